"""VLAN ids on the wire: libvirt tags a bridged network on an Open vSwitch bridge (``<vlan><tag>``);
a Linux bridge carries a VLAN by sitting on its sub-interface (the endpoint maps the VLAN to that
bridge); NAT networks and VXLAN ids are never on the wire as tags (README, network section)."""

import os

import libvirt
import pytest

from compute import networking
from compute.drivers import xml as lx
from compute.drivers.base import DriverError, ErrorCode, ForwardMode, NetworkSpec
from compute.hypervisor import driver_for
from compute.models import Endpoint
from network import services
from network.errors import NetworkError
from network.models import Network
from tests.network.conftest import endpoint_make, tenant_network

URI = os.environ.get("LIBVIRT_QEMU_URI", "qemu:///system")


def _flat(scenario, *, bridge="", segment_id=120, segment_type="vlan", name="campus"):
    return services.network_create(
        actor=scenario.sysadmin,
        tenant=None,
        name=name,
        kind=Network.Kind.FLAT,
        bridge=bridge,
        cidr="",
        segment_type=segment_type,
        segment_id=segment_id,
    )


def _endpoint(**options):
    return Endpoint(pk=7, name="e7", kind="libvirt", url="test:///default", options=options)


def test_a_vlan_on_an_open_vswitch_bridge_is_tagged_and_a_linux_bridge_is_chosen_per_vlan(scenario):
    flat = _flat(scenario)
    ovs = networking.network_spec(flat, _endpoint(ovs_bridges=["ovsbr0"]))
    assert (ovs.bridge, ovs.virtualport, ovs.vlan) == ("ovsbr0", "openvswitch", 120)
    # A Linux bridge on the VLAN's sub-interface: the VLAN is already on the wire there, no tag.
    linux = networking.network_spec(flat, _endpoint(vlan_bridges={"120": "br120"}))
    assert (linux.bridge, linux.virtualport, linux.vlan) == ("br120", "", None)
    with pytest.raises(DriverError) as caught:
        networking.network_spec(flat, _endpoint())
    assert caught.value.code == ErrorCode.INVALID_SPEC and "vlan_bridges" in caught.value.message

    # The network's own bridge wins; it is tagged only when the endpoint says it is Open vSwitch.
    named = _flat(scenario, bridge="br0", segment_id=121, name="named")
    assert networking.network_spec(named, _endpoint(ovs_bridges=["ovsbr0"])).vlan is None
    assert networking.network_spec(named, _endpoint(ovs_bridges=["br0"])).vlan == 121
    # VXLAN ids and router (NAT) networks are never tags.
    vxlan = _flat(scenario, bridge="ovsbr0", segment_type="vxlan", segment_id=5000, name="overlay")
    assert networking.network_spec(vxlan, _endpoint(ovs_bridges=["ovsbr0"])).vlan is None
    routed = tenant_network(scenario, segment_type="vlan", segment_id=300)
    assert networking.network_spec(routed, _endpoint(ovs_bridges=["ovsbr0"])).vlan is None


def test_a_flat_network_may_name_only_its_vlan(scenario, api):
    client = api.as_user(scenario.sysadmin)
    payload = {"name": "v", "kind": "flat", "segment_type": "vlan", "segment_id": 130, "cidr": "10.231.40.0/24"}
    response = client.post("/api/v1/networks/", payload, format="json")
    assert response.status_code == 201, response.content
    response = client.post("/api/v1/networks/", {"name": "w", "kind": "flat", "cidr": "10.231.41.0/24"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == NetworkError.FLAT_NEEDS_BRIDGE


def test_the_tag_is_in_the_network_xml_on_libvirts_test_driver(scenario, run_id):
    flat = _flat(scenario)
    endpoint = endpoint_make(scenario, name=f"v-{run_id}", prefix=f"v{run_id}")
    endpoint.options = {**endpoint.options, "ovs_bridges": ["ovsbr0"]}
    endpoint.save(update_fields=["options"])
    name = networking.network_ensure_on(network=flat, endpoint=endpoint)
    # The test driver's state is shared by the process's connections while one (the driver's) is open.
    conn = libvirt.open("test:///default")
    try:
        xml = lx.parse(conn.networkLookupByName(name).XMLDesc(0))
    finally:
        conn.close()
    assert xml.find("forward").get("mode") == "bridge" and xml.find("bridge").get("name") == "ovsbr0"
    assert xml.find("virtualport").get("type") == "openvswitch"
    assert [t.get("id") for t in xml.findall("vlan/tag")] == ["120"]
    # Ensuring it again is a no-op; the same name with another VLAN is refused, not silently kept.
    networking.network_ensure_on(network=flat, endpoint=endpoint)
    other = NetworkSpec(name=name, forward=ForwardMode.BRIDGE, bridge="ovsbr0", virtualport="openvswitch", vlan=121)
    with pytest.raises(DriverError) as caught:
        driver_for(endpoint).network_ensure(other)
    assert caught.value.code == ErrorCode.EXISTS
    driver_for(endpoint).network_delete(name)


@pytest.mark.libvirt
def test_the_real_daemon_takes_our_tagged_xml_and_refuses_a_tag_we_never_write(qemu_prefix):
    """Defined only: starting it needs Open vSwitch on the host, which this machine does not run."""
    spec = NetworkSpec(
        name=f"{qemu_prefix}-vlan", forward=ForwardMode.BRIDGE, bridge="ovsbr0", virtualport="openvswitch", vlan=120
    )
    conn = libvirt.open(URI)
    try:
        net = conn.networkDefineXML(lx.network_xml(spec))
        try:
            assert [t.get("id") for t in lx.parse(net.XMLDesc(0)).findall("vlan/tag")] == ["120"]
        finally:
            net.undefine()
        # What libvirt refuses, our XML never asks for: a tag on a plain Linux bridge.
        plain = (
            f"<network><name>{qemu_prefix}-plain</name><forward mode='bridge'/><bridge name='br0'/>"
            "<vlan><tag id='120'/></vlan></network>"
        )
        with pytest.raises(libvirt.libvirtError, match="doesn't support vlan"):
            conn.networkDefineXML(plain)
    finally:
        conn.close()
    for bad in (
        NetworkSpec(name="x", forward=ForwardMode.BRIDGE, bridge="br0", vlan=120),
        NetworkSpec(name="x", forward=ForwardMode.NAT, bridge="virbr9", vlan=120),
    ):
        with pytest.raises(DriverError) as caught:
            lx.network_xml(bad)
        assert caught.value.code == ErrorCode.INVALID_SPEC
