"""HA's pages and API: the clusters' settings (system admin only), a host's HA section with its BMC and the
confirmed clear, the 等保 redundancy item read from HA's configuration."""

import pytest
from django.test import Client
from django.utils import timezone

from audit.compliance import Status, check_get
from compute import services
from compute.ha import services as ha_services
from compute.models import Cluster, ClusterHa, Desktop, HaIncident, HaState, Host

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    settings.SECOND_FACTOR_REQUIRED = False


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _hosts(scenario, count=2):
    return [
        services.host_add(
            actor=scenario.sysadmin,
            name=f"n{i}",
            uri="test:///default",
            site="east",
            cluster="east-general",
            address=f"10.9.0.{i}",
            domain_type="qemu",
            storage_pool="shared",
            shared_storage=True,
        )
        for i in range(1, count + 1)
    ]


def test_the_system_admin_sets_a_clusters_ha_on_its_page_and_nobody_else_sees_it(scenario):
    n1, _n2 = _hosts(scenario)
    cluster = n1.endpoint.cluster
    admin = _client(scenario.sysadmin)
    page = admin.get("/compute/admin/ha/").content.decode()
    assert "east-general" in page and "15 秒" in page and "2 台未配置 BMC" in page

    response = admin.post(
        f"/compute/admin/ha/{cluster.pk}/", {"enabled": "on", "detection_seconds": "20", "fencing": "ipmi"}
    )
    assert response.status_code == 302
    assert (cluster.ha.enabled, cluster.ha.detection) == (True, 20)
    bad = admin.post(f"/compute/admin/ha/{cluster.pk}/", {"detection_seconds": "1", "fencing": "ipmi"})
    assert bad.status_code == 200 and ClusterHa.objects.get(cluster=cluster).detection_seconds == 20

    for user in (scenario.teacher, scenario.tenant_admin, scenario.stranger):
        assert _client(user).get("/compute/admin/ha/").status_code == 404
        assert _client(user).post(f"/compute/admin/hosts/{n1.pk}/ha-clear/", {"confirm": "on"}).status_code == 404


def test_the_host_page_shows_a_failed_fencing_and_clearing_needs_the_confirmation(scenario):
    n1, _n2 = _hosts(scenario)
    now = timezone.now()
    ha_services.host_suspect(host_id=n1.pk, seen=now, now=now)
    ha_services.host_fence_claim(host_id=n1.pk, now=now)
    ha_services.host_fence_result(host_id=n1.pk, error="BMC 断电失败：timeout")
    admin = _client(scenario.sysadmin)

    page = admin.get(f"/compute/admin/hosts/{n1.pk}/").content.decode()
    assert "主机 n1 无法隔离：桌面未重启" in page and 'data-testid="ha-clear-form"' in page
    assert "隔离失败" in admin.get("/compute/admin/hosts/").content.decode()

    admin.post(f"/compute/admin/hosts/{n1.pk}/ha-clear/", {})
    assert Host.objects.get(pk=n1.pk).ha_state == HaState.FENCE_FAILED  # not confirmed: nothing happens
    admin.post(f"/compute/admin/hosts/{n1.pk}/ha-clear/", {"confirm": "on"})
    assert Host.objects.get(pk=n1.pk).ha_state == HaState.OK

    admin.post(
        f"/compute/admin/hosts/{n1.pk}/bmc/",
        {"address": "10.9.9.1", "port": "623", "username": "root", "password": "s3cret"},
    )
    host = Host.objects.get(pk=n1.pk)
    assert (host.bmc_address, host.bmc_password) == ("10.9.9.1", "s3cret")
    assert "s3cret" not in admin.get(f"/compute/admin/hosts/{n1.pk}/").content.decode()


def test_the_api_reads_and_changes_ha_settings_and_clears_a_host_for_the_system_admin_only(scenario, api):
    n1, _n2 = _hosts(scenario)
    cluster = n1.endpoint.cluster
    listed = api.as_user(scenario.sysadmin).get("/api/v1/ha-clusters/").json()
    assert [(c["name"], c["enabled"], c["detection_seconds"], c["shared_storage"]) for c in listed["results"]] == [
        ("east-general", True, 15, True)
    ]
    changed = api.put(f"/api/v1/ha-clusters/{cluster.pk}/", {"enabled": False, "detection_seconds": 30}, format="json")
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    refused = api.put(f"/api/v1/ha-clusters/{cluster.pk}/", {"enabled": True, "detection_seconds": 3}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid"
    assert "detection_seconds" in refused.json()["detail"]

    nothing = api.post(f"/api/v1/ha-hosts/{n1.pk}/clear/")
    assert nothing.status_code == 409 and nothing.json()["code"] == "ha_nothing_to_clear"
    bmc = api.post(f"/api/v1/ha-hosts/{n1.pk}/bmc/", {"address": "10.9.9.1", "username": "root", "password": "pw"})
    assert bmc.status_code == 200 and "password" not in bmc.json() and bmc.json()["bmc_address"] == "10.9.9.1"

    for user in (scenario.teacher, scenario.stranger):
        other = api.as_user(user)
        assert other.get("/api/v1/ha-clusters/").json()["results"] == []
        assert other.get(f"/api/v1/ha-clusters/{cluster.pk}/").status_code == 404
        assert other.post(f"/api/v1/ha-hosts/{n1.pk}/clear/").status_code == 404


def test_the_redundancy_item_reports_from_has_configuration_and_last_drill(scenario):
    check = check_get("db.redundancy")
    assert check is not None and check.auto is not None  # no longer a manual entry
    status, evidence = check.auto(3)
    assert status == Status.NONCONFORM

    n1, n2 = _hosts(scenario)
    status, evidence = check.auto(3)
    assert (
        status == Status.PARTIAL and "未配置 BMC 隔离的主机：n1、n2" in evidence and "尚无故障切换演练记录" in evidence
    )

    for host in (n1, n2):
        ha_services.host_bmc_set(actor=None, host=host, address="10.9.9.1", port=623, username="root", password="pw")
    now = timezone.now()
    HaIncident.objects.create(
        host=n1,
        cluster=n1.endpoint.cluster,
        suspect_at=now,
        fenced_at=now,
        finished_at=now,
        outcome=HaIncident.Outcome.RESTARTED,
        restarted=[{"desktop": 1, "name": "d", "to": "n2"}],
    )
    status, evidence = check.auto(3)
    assert status == Status.CONFORM, evidence
    assert "所有主机已配置 BMC" in evidence and "已全部重启" in evidence

    ClusterHa.objects.create(cluster=Cluster.objects.get(name="east-general"), enabled=False)
    status, evidence = check.auto(3)
    assert status == Status.NONCONFORM and "未启用高可用" in evidence


def test_a_desktops_ha_flag_follows_its_cluster_until_set_and_another_tenant_gets_404(scenario, api):

    n1, _n2 = _hosts(scenario)
    desktop = Desktop.objects.create(
        name="d", vm_name="cc-ha-flag", tenant=scenario.tenant_a, owner=scenario.student, endpoint=n1.endpoint, host=n1
    )
    admin = api.as_user(scenario.tenant_admin)
    assert admin.get(f"/api/v1/desktop-ha/{desktop.pk}/").json() == {
        "id": desktop.pk,
        "name": "d",
        "ha_enabled": None,
        "ha_effective": True,
    }
    changed = admin.put(f"/api/v1/desktop-ha/{desktop.pk}/", {"enabled": "off"}, format="json")
    assert changed.status_code == 200 and changed.json()["ha_effective"] is False
    assert (
        api.as_user(scenario.stranger)
        .put(f"/api/v1/desktop-ha/{desktop.pk}/", {"enabled": "on"}, format="json")
        .status_code
        == 404
    )
    assert Desktop.objects.get(pk=desktop.pk).ha_enabled is False


def test_a_desktops_admins_see_and_set_its_ha_flag_on_its_page_its_owner_does_not(scenario):
    from audit.actions import Action
    from audit.models import AuditEvent
    from compute.models import Desktop

    n1, _n2 = _hosts(scenario)
    desktop = Desktop.objects.create(
        name="d", vm_name="cc-ha-page", tenant=scenario.tenant_a, owner=scenario.student, endpoint=n1.endpoint, host=n1
    )
    page_url = f"/compute/desktops/{desktop.pk}/"
    admin = _client(scenario.tenant_admin)
    page = admin.get(page_url).content.decode()
    assert 'data-testid="desktop-ha"' in page and "开启" in page and "（集群默认：共享存储）" in page

    response = admin.post(f"/compute/desktops/{desktop.pk}/ha/", {"ha": "off"})  # no confirmation
    assert response.status_code == 302 and response.url == page_url
    assert Desktop.objects.get(pk=desktop.pk).ha_enabled is False
    page = admin.get(page_url).content.decode()
    assert "（集群默认" not in page and '<option value="off" selected>' in page
    assert AuditEvent.objects.filter(action=Action.HA_DESKTOP_FLAG_CHANGED, object_id=str(desktop.pk)).exists()
    _client(scenario.sysadmin).post(f"/compute/desktops/{desktop.pk}/ha/", {"ha": ""})
    assert Desktop.objects.get(pk=desktop.pk).ha_enabled is None

    owner = _client(scenario.student)
    assert 'data-testid="desktop-ha"' not in owner.get(page_url).content.decode()
    assert owner.post(f"/compute/desktops/{desktop.pk}/ha/", {"ha": "off"}).status_code == 404
    assert _client(scenario.stranger).post(f"/compute/desktops/{desktop.pk}/ha/", {"ha": "off"}).status_code == 404
    assert Desktop.objects.get(pk=desktop.pk).ha_enabled is None


def test_a_desktops_owner_cannot_set_its_ha_flag_through_the_api(api, scenario):
    """The flag is the admins' (system or tenant), on the page and in the API alike: the owner sees the
    desktop but gets a 403 with a code, and nothing changes."""
    n1, _n2 = _hosts(scenario)
    desktop = Desktop.objects.create(
        name="own", vm_name="cc-ha-own", tenant=scenario.tenant_a, owner=scenario.student, endpoint=n1.endpoint, host=n1
    )
    refused = api.as_user(scenario.student).put(f"/api/v1/desktop-ha/{desktop.pk}/", {"enabled": "off"}, format="json")
    assert refused.status_code == 403, refused.content
    assert refused.json()["code"] == "ha_admin_only"
    assert Desktop.objects.get(pk=desktop.pk).ha_enabled is None
