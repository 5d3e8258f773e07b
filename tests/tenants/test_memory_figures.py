"""Issue #13.8: one figure and one unit for memory on every page — the flavor list, the wizard, the quota
page and the request — and quota limits typed in GiB (decimals allowed), kept exactly in MiB."""

import pytest

from common.units import memory_label
from compute import services as compute_services
from network.models import Network
from tenants.models import ApprovalRequest, Quota
from tenants.quotas import quota_set
from tests.compute.conftest import make_env
from tests.tenants.test_views import _wizard_post_data, client_for


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    settings.SECOND_FACTOR_REQUIRED = False


@pytest.fixture
def compute_ready(scenario):
    env = make_env(scenario)
    Network.objects.create(tenant=scenario.tenant_a, name="cs-lab")
    return env


@pytest.fixture
def lab_flavor(scenario):
    return compute_services.flavor_create(actor=scenario.sysadmin, name="lab", vcpus=2, memory_mib=1536, disk_gib=1)


def test_the_flavor_page_the_wizard_the_quota_page_and_the_request_say_the_same_memory(
    scenario, course, compute_ready, lab_flavor
):
    quota_set(actor=None, tenant=scenario.tenant_a, course=course, limits={"ram_mib": 8192})
    compute_services.desktop_create(
        actor=scenario.teacher,
        tenant=scenario.tenant_a,
        course=course,
        image_version=compute_ready.version,
        flavor=lab_flavor,
    )

    flavors = client_for(scenario.sysadmin).get("/compute/admin/flavors/").content.decode()
    assert "<td>1.5 GiB</td>" in flavors
    teacher = client_for(scenario.teacher)
    wizard = teacher.get(f"/request/new/?course={course.pk}").content.decode()
    assert "lab：2 vCPU，1.5 GiB 内存" in wizard
    quotas = client_for(scenario.tenant_admin).get("/tenants/quotas/").content.decode()
    assert "已用 0 MiB · 预留 1.5 GiB · 上限 8 GiB（可用 6.5 GiB）" in quotas

    response = teacher.post("/request/new/", {**_wizard_post_data(course, compute_ready, 1), "flavor": lab_flavor.pk})
    assert response.status_code == 302
    request = ApprovalRequest.objects.get()
    assert request.ram_mib == request.desktops * 1536  # the seat and the pool's spare one
    detail = teacher.get(f"/tenants/requests/{request.pk}/").content.decode()
    assert f'<dd class="col-6">{memory_label(request.ram_mib)}</dd>' in detail


@pytest.mark.parametrize(("typed", "kept"), [("0.5", 512), ("1.5", 1536), ("0.25", 256), ("320", 320 * 1024)])
def test_a_memory_limit_is_typed_in_gib_and_kept_in_mib(scenario, typed, kept):
    quota = quota_set(actor=None, tenant=scenario.tenant_a, limits={"vcpu": 8})
    admin = client_for(scenario.sysadmin)

    response = admin.post(f"/tenants/quotas/{quota.pk}/", {f"q{quota.pk}-vcpu": "8", f"q{quota.pk}-ram_gib": typed})

    assert response.status_code == 302
    assert Quota.objects.get(pk=quota.pk).limit_ram_mib == kept
    page = admin.get("/tenants/quotas/").content.decode()
    assert f'name="q{quota.pk}-ram_gib"' in page and f'value="{typed}"' in page


def test_a_memory_limit_that_is_not_a_number_is_refused_without_change(scenario):
    quota = quota_set(actor=None, tenant=scenario.tenant_a, limits={"ram_mib": 1024})

    response = client_for(scenario.sysadmin).post(f"/tenants/quotas/{quota.pk}/", {f"q{quota.pk}-ram_gib": "-1"})

    assert response.status_code == 302
    assert Quota.objects.get(pk=quota.pk).limit_ram_mib == 1024
