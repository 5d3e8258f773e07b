"""Compute nodes as inventory: host_add reads capacity from libvirt, maintenance and removal, placement among
the hosts of a cluster and site (libvirt's test driver; the real remote hosts are in tests/testbed/)."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from common.errors import Conflict, InvalidInput, NotFound
from compute import services
from compute.drivers.libvirt.capacity import gpus_from_nodedev
from compute.errors import ComputeError
from compute.models import Cluster, Desktop, Endpoint, Host, StoragePool
from compute.placement import place

pytestmark = pytest.mark.django_db

URI = "test:///default"


def _add(scenario, name, *, address, site="east", cluster="east-general", shared=True):
    return services.host_add(
        actor=scenario.sysadmin,
        name=name,
        uri=URI,
        site=site,
        cluster=cluster,
        address=address,
        domain_type="qemu",
        storage_pool="default-pool",
        shared_storage=shared,
    )


def test_host_add_reads_capacity_from_libvirt_and_prints_the_contract_json(scenario):
    out = io.StringIO()
    call_command(
        "host_add",
        "--name",
        "n1",
        "--uri",
        URI,
        "--site",
        "east",
        "--cluster",
        "east-general",
        "--address",
        "10.9.0.1",
        "--json",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    # libvirt's test driver describes a 16-CPU, 3 GiB host with two NUMA cells and one storage pool.
    assert result == {"host": "n1", "cpus": 16, "memory_mib": 3072, "gpus": 0}
    host = Host.objects.select_related("endpoint__site", "endpoint__cluster").get(name="n1")
    assert host.uri == URI and str(host.address) == "10.9.0.1" and host.state == Host.State.ENABLED
    assert host.endpoint.site.slug == "east" and host.endpoint.cluster.name == "east-general"
    assert host.numa_cells == 2
    assert [p["name"] for p in host.storage] == ["default-pool"] and host.storage[0]["capacity_bytes"] > 0
    assert host.queue == "host.n1"


def test_two_hosts_cannot_claim_the_same_management_address_and_nothing_is_half_saved(scenario):
    _add(scenario, "n1", address="10.9.0.1")
    endpoints = Endpoint.objects.count()
    with pytest.raises(Conflict) as excinfo:
        _add(scenario, "n2", address="10.9.0.1")
    assert excinfo.value.code == ComputeError.HOST_ADDRESS_TAKEN
    assert excinfo.value.detail["host"] == "n1"
    assert Endpoint.objects.count() == endpoints and not Host.objects.filter(name="n2").exists()


@pytest.mark.parametrize(
    "uri",
    ["http://h1/system", "qemu+tcp://h1/session", "qemu+tcp://h1/system; rm -rf /", "", "qemu+udp://h1/system"],
)
def test_a_host_uri_must_be_a_libvirt_system_uri(scenario, uri):
    with pytest.raises(InvalidInput) as excinfo:
        services.host_add(actor=scenario.sysadmin, name="n1", uri=uri, site="east", cluster="c", address="10.9.0.1")
    assert excinfo.value.code == ComputeError.HOST_URI_INVALID
    assert not Host.objects.filter(name="n1").exists()


def test_the_command_reports_a_refusal_as_its_code(scenario):
    _add(scenario, "n1", address="10.9.0.1")
    with pytest.raises(CommandError, match="host_address_taken"):
        call_command(
            "host_add", "--name", "n2", "--uri", URI, "--site", "east", "--cluster", "c", "--address", "10.9.0.1"
        )


def test_placement_spreads_over_the_hosts_of_a_cluster_and_skips_maintenance(scenario):
    hosts = [_add(scenario, f"n{i}", address=f"10.9.0.{i}") for i in (1, 2, 3)]
    image = services.image_create(actor=scenario.sysadmin, name="Debian", os_type="linux")
    version = services.image_version_register(
        actor=scenario.sysadmin,
        image=image,
        endpoint=hosts[0].endpoint,
        pool="default-pool",
        volume="golden.qcow2",
        size_bytes=1024**3,
    )
    flavor = services.flavor_create(actor=scenario.sysadmin, name="small", vcpus=1, memory_mib=512, disk_gib=1)
    chosen = []
    for _ in range(6):
        placement = place(flavor=flavor, image_version=version)
        chosen.append(placement.host.name)
        Desktop.objects.create(
            name="d",
            vm_name=f"cc-{len(chosen)}",
            tenant=scenario.tenant_a,
            endpoint=placement.endpoint,
            host=placement.host,
            memory_mib=flavor.memory_mib,
            vcpus=1,
        )
    assert sorted(chosen) == ["n1", "n1", "n2", "n2", "n3", "n3"]

    call_command("host_maintenance", "--name", "n2", "on", stdout=io.StringIO())
    assert Host.objects.get(name="n2").state == Host.State.MAINTENANCE
    assert {place(flavor=flavor, image_version=version).host.name for _ in range(2)} <= {"n1", "n3"}
    services.host_maintenance(actor=scenario.sysadmin, name="n2", on=False)
    assert Host.objects.get(name="n2").state == Host.State.ENABLED


def test_an_image_on_local_storage_stays_on_its_host_and_other_clusters_and_sites_are_not_used(scenario):
    local = _add(scenario, "n1", address="10.9.0.1", shared=False)
    _add(scenario, "n2", address="10.9.0.2", shared=False)
    _add(scenario, "w1", address="10.9.1.1", site="west", cluster="west-general")
    image = services.image_create(actor=scenario.sysadmin, name="Debian", os_type="linux")
    version = services.image_version_register(
        actor=scenario.sysadmin, image=image, endpoint=local.endpoint, pool="default-pool", volume="g", size_bytes=1
    )
    flavor = services.flavor_create(actor=scenario.sysadmin, name="small", vcpus=1, memory_mib=512, disk_gib=1)
    assert {place(flavor=flavor, image_version=version).host.name for _ in range(3)} == {"n1"}

    west = Host.objects.get(name="w1").endpoint.site
    with pytest.raises(InvalidInput) as excinfo:
        place(flavor=flavor, image_version=version, site=west)
    assert excinfo.value.code == ComputeError.NO_HOST
    assert place(flavor=flavor, image_version=None, site=west).host.name == "w1"


def test_placement_packs_when_the_cluster_says_so(scenario):
    for i in (1, 2):
        _add(scenario, f"n{i}", address=f"10.9.0.{i}")
    Cluster.objects.filter(name="east-general").update(policy=Cluster.Policy.PACK)
    flavor = services.flavor_create(actor=scenario.sysadmin, name="small", vcpus=1, memory_mib=512, disk_gib=1)
    first = place(flavor=flavor, image_version=None).host
    Desktop.objects.create(
        name="d", vm_name="cc-1", tenant=scenario.tenant_a, endpoint=first.endpoint, host=first, memory_mib=512, vcpus=1
    )
    assert place(flavor=flavor, image_version=None).host == first


def test_a_host_with_desktops_is_not_removed_an_empty_one_is(scenario):
    busy = _add(scenario, "n1", address="10.9.0.1")
    _add(scenario, "n2", address="10.9.0.2")
    Desktop.objects.create(name="d", vm_name="cc-1", tenant=scenario.tenant_a, endpoint=busy.endpoint, host=busy)
    with pytest.raises(Conflict) as excinfo:
        services.host_remove(actor=scenario.sysadmin, name="n1")
    assert excinfo.value.code == ComputeError.HOST_HAS_DESKTOPS and excinfo.value.detail == {"desktops": 1}
    assert Host.objects.filter(name="n1").exists()

    call_command("host_remove", "--name", "n2", stdout=io.StringIO())
    assert not Host.objects.filter(name="n2").exists() and not Endpoint.objects.filter(name="n2").exists()
    assert not StoragePool.objects.filter(endpoint__name="n2").exists()
    with pytest.raises(NotFound):
        services.host_maintenance(actor=scenario.sysadmin, name="n2", on=True)


def test_a_host_that_stops_answering_is_down_and_comes_back(scenario):
    host = _add(scenario, "n1", address="10.9.0.1")
    services.host_refresh(host=host, info=None, error="connection refused")
    host.refresh_from_db()
    assert host.state == Host.State.DOWN and host.last_error == "connection refused"
    flavor = services.flavor_create(actor=scenario.sysadmin, name="small", vcpus=1, memory_mib=512, disk_gib=1)
    with pytest.raises(InvalidInput):
        place(flavor=flavor, image_version=None)

    from compute.hypervisor import driver_for

    services.endpoint_refresh(endpoint=host.endpoint, info=driver_for(host.endpoint).host_info())
    host.refresh_from_db()
    assert host.state == Host.State.ENABLED and host.last_error == "" and host.name == "n1"
    assert Host.objects.filter(endpoint=host.endpoint).count() == 1


def test_a_host_in_maintenance_stays_there_when_it_answers(scenario):
    host = _add(scenario, "n1", address="10.9.0.1")
    services.host_maintenance(actor=scenario.sysadmin, name="n1", on=True)
    services.host_refresh(host=host, info=None, error="gone")
    from compute.hypervisor import driver_for

    services.host_refresh(host=host, info=driver_for(host.endpoint).host_info())
    assert Host.objects.get(pk=host.pk).state == Host.State.MAINTENANCE


GPU_XML = """<device><name>pci_0000_3b_00_0</name><capability type='pci'>
  <class>0x030200</class><domain>0</domain><bus>59</bus><slot>0</slot><function>0</function>
  <capability type='mdev_types'>
    <type id='nvidia-63'><name>GRID P40-1Q</name><deviceAPI>vfio-pci</deviceAPI>
      <availableInstances>24</availableInstances></type>
    <type id='nvidia-64'><name>GRID P40-2Q</name><availableInstances>12</availableInstances></type>
  </capability></capability></device>"""
NIC_XML = """<device><name>pci_0000_00_03_0</name><capability type='pci'>
  <class>0x020000</class><domain>0</domain><bus>0</bus><slot>3</slot><function>0</function></capability></device>"""
PASSTHROUGH_XML = """<device><name>pci_0000_af_00_0</name><capability type='pci'>
  <class>0x030000</class><domain>0</domain><bus>175</bus><slot>0</slot><function>0</function></capability></device>"""


def test_gpus_and_their_mediated_device_types_are_discovered_from_node_devices():
    gpus, mdev_types = gpus_from_nodedev([GPU_XML, NIC_XML, PASSTHROUGH_XML])
    assert gpus == ["0000:3b:00.0", "0000:af:00.0"]
    assert mdev_types == [
        {"type": "nvidia-63", "name": "GRID P40-1Q", "available": 24, "device": "0000:3b:00.0"},
        {"type": "nvidia-64", "name": "GRID P40-2Q", "available": 12, "device": "0000:3b:00.0"},
    ]


def _client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_the_hosts_page_shows_each_site_with_capacity_bars_and_a_host_its_desktops(scenario, settings):
    settings.SECOND_FACTOR_REQUIRED = False
    n1 = _add(scenario, "n1", address="10.9.0.1")
    _add(scenario, "w1", address="10.9.1.1", site="west", cluster="west-general")
    services.host_maintenance(actor=scenario.sysadmin, name="w1", on=True)
    Desktop.objects.create(
        name="lab-desk", vm_name="cc-1", tenant=scenario.tenant_a, endpoint=n1.endpoint, host=n1, memory_mib=1536
    )
    client = _client(scenario.sysadmin)
    page = client.get("/compute/admin/hosts/").content.decode()
    assert 'data-testid="site-east"' in page and 'data-testid="site-west"' in page
    # 1536 of the test driver's 3072 MiB (memory overcommit 1): a bar at 50 %.
    assert 'aria-valuenow="50"' in page and "width: 50%" in page
    assert "1536 / 3072 MiB" in page and "维护" in page
    detail = client.get(f"/compute/admin/hosts/{n1.pk}/").content.decode()
    assert "lab-desk" in detail and "default-pool" in detail and "test:///default" in detail

    for user in (scenario.student, scenario.tenant_admin):
        assert _client(user).get("/compute/admin/hosts/").status_code == 404
        assert _client(user).get(f"/compute/admin/hosts/{n1.pk}/").status_code == 404
