"""A cluster's shared storage: recorded, set up on each of its hosts (libvirt's test driver), refused when wrong."""

import io
import json

import libvirt
import pytest
from django.core.management import call_command

from common.errors import Forbidden, InvalidInput, NotFound
from compute import services
from compute.drivers.base import PoolSpec
from compute.drivers.libvirt import LibvirtDriver
from compute.errors import ComputeError
from compute.models import SharedStorage, StoragePool

pytestmark = pytest.mark.django_db


def _host(scenario, name, address, cluster="east-general"):
    return services.host_add(
        actor=scenario.sysadmin,
        name=name,
        uri="test:///default",
        site="east",
        cluster=cluster,
        address=address,
        domain_type="qemu",
    )


def test_shared_storage_is_set_up_on_every_host_of_the_cluster_and_on_a_host_added_later(scenario):
    _host(scenario, "n1", "10.9.0.1")
    _host(scenario, "n2", "10.9.0.2")
    _host(scenario, "o1", "10.9.0.3", cluster="other")
    out = io.StringIO()
    call_command(
        "shared_storage",
        *("--site", "east", "--cluster", "east-general", "--pool", "cc-shared", "--kind", "dir"),
        *("--path", "/var/lib/cc-shared", "--unsafe-migration", "--json"),
        stdout=out,
    )
    assert json.loads(out.getvalue()) == {
        "cluster": "east-general",
        "pool": "cc-shared",
        "kind": "dir",
        "hosts": ["n1", "n2"],
    }
    storage = SharedStorage.objects.get()
    assert storage.unsafe_migration and SharedStorage.of(storage.cluster_id) == storage
    _host(scenario, "n3", "10.9.0.4")
    shared = StoragePool.objects.filter(name="cc-shared").values_list("endpoint__name", "kind")
    assert sorted(shared) == [("n1", "distributed"), ("n2", "distributed"), ("n3", "distributed")]


def test_nfs_needs_its_server_and_export_and_only_the_system_admin_sets_it(scenario):
    _host(scenario, "n1", "10.9.0.1")
    with pytest.raises(InvalidInput) as exc:
        services.shared_storage_set(
            actor=scenario.sysadmin, site="east", cluster="east-general", pool="nfs", kind="netfs", path="/mnt/nfs"
        )
    assert exc.value.code == ComputeError.SHARED_STORAGE_INVALID
    with pytest.raises(NotFound):
        services.shared_storage_set(
            actor=scenario.sysadmin, site="east", cluster="nowhere", pool="p", kind="dir", path="/srv"
        )
    with pytest.raises(Forbidden):
        services.shared_storage_set(
            actor=scenario.teacher, site="east", cluster="east-general", pool="p", kind="dir", path="/srv"
        )
    assert not SharedStorage.objects.exists()


def test_a_host_with_a_pool_of_that_name_elsewhere_refuses_and_nothing_is_saved(scenario):
    _host(scenario, "n1", "10.9.0.1")
    conn = libvirt.open("test:///default")  # the test driver's state is the process's: n1 sees this pool
    pool = conn.storagePoolDefineXML(
        "<pool type='dir'><name>clash</name><target><path>/elsewhere</path></target></pool>", 0
    )
    try:
        with pytest.raises(InvalidInput) as exc:
            services.shared_storage_set(
                actor=scenario.sysadmin, site="east", cluster="east-general", pool="clash", kind="dir", path="/srv"
            )
        assert exc.value.code == ComputeError.SHARED_STORAGE_FAILED and "/elsewhere" in exc.value.message
        assert not SharedStorage.objects.exists()
    finally:
        pool.undefine()
        conn.close()


def test_the_driver_writes_an_nfs_pool_libvirt_mounts():
    driver = LibvirtDriver("test:///default")
    try:
        driver.shared_pool_ensure(
            PoolSpec(name="nfs-x", kind="netfs", path="/mnt/x", source_host="nas1", source_path="/export/x")
        )
        xml = driver._run("read", lambda conn: conn.storagePoolLookupByName("nfs-x").XMLDesc(0))
        assert (
            "<host name='nas1'/>" in xml.replace('"', "'")
            and "/export/x" in xml
            and "type='netfs'" in xml.replace('"', "'")
        )
    finally:
        driver._run("drop", lambda conn: conn.storagePoolLookupByName("nfs-x").destroy())
        driver.close()
