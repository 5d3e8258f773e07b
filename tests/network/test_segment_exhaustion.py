"""A VXLAN or VLAN id range that is used up: the next network is a 409 with its code, a Chinese message naming
the site and the range, and nothing of it is saved (no network, no subnet, no address, no audit event)."""

import pytest
from django.utils import translation

from audit.models import AuditEvent
from common.errors import Conflict
from network import services
from network.errors import NetworkError
from network.models import Network, SegmentRange, Subnet
from tests.network.conftest import tenant_network, tenant_pool


def _saved() -> tuple[int, int, int]:
    return Network.objects.count(), Subnet.objects.count(), AuditEvent.objects.count()


@pytest.mark.parametrize(("kind", "first"), [("vxlan", 7000), ("vlan", 300)])
def test_the_platforms_range_used_up_refuses_the_next_network_and_saves_nothing(scenario, kind, first):
    SegmentRange.objects.create(site="main", kind=kind, first=first, last=first + 1)
    made = [tenant_network(scenario, cidr=f"10.231.{i}.0/24", name=f"n{i}", segment_type=kind) for i in (1, 2)]
    assert [n.segment_id for n in made] == [first, first + 1]
    before = _saved()
    with translation.override("zh-hans"), pytest.raises(Conflict) as refused:
        tenant_network(scenario, cidr="10.231.3.0/24", name="n3", segment_type=kind)
    assert refused.value.code == NetworkError.SEGMENT_EXHAUSTED
    assert f"{kind.upper()} 号（{first}-{first + 1}）已全部使用" in refused.value.message
    assert "main" in refused.value.message
    assert refused.value.detail == {"site": "main", "segment_type": kind, "range": [[first, first + 1]], "used": 2}
    assert _saved() == before and not Network.objects.filter(name="n3").exists()

    # A network deleted frees its id for the next one.
    services.network_delete(actor=scenario.sysadmin, network=made[0])
    assert tenant_network(scenario, cidr="10.231.3.0/24", name="n3", segment_type=kind).segment_id == first


def test_a_tenants_assigned_vxlan_range_used_up_is_a_409_with_code_and_message_through_the_api(scenario, api):
    tenant_pool(scenario)
    segment = services.segment_create(actor=scenario.sysadmin, name="vx", kind="vxlan", first=9100, last=9100)
    services.segment_assign(actor=scenario.sysadmin, segment=segment, tenant=scenario.tenant_a)
    client = api.as_user(scenario.tenant_admin)
    body = {"name": "a", "cidr": "10.231.20.0/24", "segment_type": "vxlan"}
    created = client.post("/api/v1/networks/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["segment_id"] == 9100
    before = _saved()
    response = client.post(
        "/api/v1/networks/",
        {"name": "b", "cidr": "10.231.21.0/24", "segment_type": "vxlan"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 409, response.content
    answer = response.json()
    assert answer["code"] == NetworkError.SEGMENT_EXHAUSTED
    assert "VXLAN 号（9100-9100）已全部使用" in answer["message"]
    assert answer["detail"]["range"] == [[9100, 9100]]
    assert _saved() == before
