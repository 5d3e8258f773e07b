"""The migrate page, the host page's maintenance switch, evacuation and events, and their API (system admin);
everyone else gets a 404 (or a 403 for a desktop they may see but not move)."""

import pytest
from django.test import Client

from compute import services
from compute.models import Desktop, DesktopMigration, Host
from tests.compute.test_migration import _desktop, hosts  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    settings.SECOND_FACTOR_REQUIRED = False


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_migrate_page_preselects_placements_choice_and_starts_the_move(scenario, hosts):  # noqa: F811
    desktop = _desktop(scenario, hosts["n1"])
    _desktop(scenario, hosts["n2"], name="busy", memory_mib=1024)
    client = _client(scenario.sysadmin)
    page = client.get(f"/compute/admin/desktops/{desktop.pk}/migrate/").content.decode()
    assert 'data-testid="migrate-host"' in page
    assert f'<option value="{hosts["n3"].pk}" selected>n3 （推荐）</option>' in page  # the emptiest
    assert "w1" not in page  # another site is never offered
    response = client.post(f"/compute/admin/desktops/{desktop.pk}/migrate/", {"host": hosts["n2"].pk})
    assert response.status_code == 302
    migration = DesktopMigration.objects.get(desktop=desktop)
    assert migration.target_name == "n2" and migration.state == "queued"
    page = client.get(f"/compute/admin/desktops/{desktop.pk}/migrate/").content.decode()
    assert 'http-equiv="refresh"' in page and 'data-testid="migration-cancel"' in page
    client.post(f"/compute/admin/migrations/{migration.pk}/cancel/")
    assert DesktopMigration.objects.get(pk=migration.pk).cancel_requested


def test_the_migrate_page_is_the_system_admins_alone(scenario, hosts):  # noqa: F811
    desktop = _desktop(scenario, hosts["n1"])
    for user in (scenario.teacher, scenario.tenant_admin, scenario.stranger):
        assert _client(user).get(f"/compute/admin/desktops/{desktop.pk}/migrate/").status_code == 404
        assert (
            _client(user).post(f"/compute/admin/hosts/{hosts['n1'].pk}/maintenance/", {"mode": "on"}).status_code == 404
        )
    assert Host.objects.get(pk=hosts["n1"].pk).state == Host.State.ENABLED


def test_the_host_page_switches_maintenance_and_shows_the_evacuation_and_the_timeline(scenario, hosts):  # noqa: F811
    _desktop(scenario, hosts["n1"], name="moves")
    _desktop(scenario, hosts["n1"], name="stuck", state=Desktop.State.ERROR)
    client = _client(scenario.sysadmin)
    assert 'data-testid="maintenance-on"' in client.get(f"/compute/admin/hosts/{hosts['n1'].pk}/").content.decode()
    response = client.post(f"/compute/admin/hosts/{hosts['n1'].pk}/maintenance/", {"mode": "on"})
    assert response.status_code == 302
    page = client.get(f"/compute/admin/hosts/{hosts['n1'].pk}/").content.decode()
    assert 'data-testid="evacuation"' in page and 'data-testid="maintenance-off"' in page
    assert 'data-testid="not-moved"' in page and "stuck" in page
    events = page[page.index('data-testid="host-events"') :]
    assert "修改计算节点状态" in events and "撤离计算节点上的桌面" in events and "在线迁移 · 排队中" in events
    client.post(f"/compute/admin/hosts/{hosts['n1'].pk}/maintenance/", {"mode": "off"})
    assert Host.objects.get(pk=hosts["n1"].pk).state == Host.State.ENABLED


def test_the_api_migrates_lists_and_cancels_and_refuses_the_others(scenario, hosts, api):  # noqa: F811
    desktop = _desktop(scenario, hosts["n1"])
    url = f"/api/v1/desktops/{desktop.pk}/migrate/"
    assert api.as_user(scenario.stranger).post(url, {"host": "n2"}, format="json").status_code == 404
    refused = api.as_user(scenario.tenant_admin).post(url, {"host": "n2"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "system_admin_only"
    admin = api.as_user(scenario.sysadmin)
    wrong = admin.post(url, {"host": "w1"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["code"] == "migration_other_cluster"
    assert admin.post(f"{url}cancel/").status_code == 409  # nothing to cancel yet
    started = admin.post(url, {"host": "n2"}, format="json")
    assert started.status_code == 202, started.content
    body = started.json()
    assert (body["source"], body["target"], body["state"], body["kind"]) == ("n1", "n2", "queued", "live")
    listed = admin.get(url).json()
    assert listed["migrations"][0]["id"] == body["id"] and listed["candidates"] == []  # it is migrating
    cancelled = admin.post(f"{url}cancel/")
    assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"] is True


def test_the_api_puts_a_host_into_maintenance_and_reads_its_events(scenario, hosts, api):  # noqa: F811
    _desktop(scenario, hosts["n1"])
    url = f"/api/v1/hosts/{hosts['n1'].pk}/"
    assert api.as_user(scenario.teacher).post(f"{url}maintenance/", {"on": True}, format="json").status_code == 404
    admin = api.as_user(scenario.sysadmin)
    response = admin.post(f"{url}maintenance/", {"on": True}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "maintenance" and body["counts"]["queued"] == 1 and body["left"] == 1
    assert admin.get(f"{url}maintenance/").json()["migrations"][0]["target"] in ("n2", "n3")
    events = admin.get(f"{url}events/").json()
    assert {"修改计算节点状态", "撤离计算节点上的桌面"} <= {e["what"] for e in events}
    assert services.evacuation_status(Host.objects.get(pk=hosts["n1"].pk))["counts"]["queued"] == 1
