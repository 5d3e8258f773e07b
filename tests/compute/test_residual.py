"""Issue #14.9, 等保 剩余信息保护: a deleted disk's blocks are wiped (libvirt) before the storage is reused,
and the 等保 check reports it from what the drivers declare and the services do."""

import pytest

from audit.compliance import Status, check_get
from compute import compliance
from compute.drivers.libvirt import LibvirtDriver
from compute.drivers.libvirt import objects as lo


class _Volume:
    def __init__(self):
        self.calls = []

    def wipe(self, flags):
        self.calls.append("wipe")

    def delete(self, flags):
        self.calls.append("delete")


def test_a_libvirt_volume_is_wiped_before_it_is_deleted():
    volume = _Volume()
    lo.wipe_and_delete(volume)
    assert volume.calls == ["wipe", "delete"]
    memory_only = _Volume()  # libvirt's test driver keeps volumes in memory and cannot wipe
    lo.wipe_and_delete(memory_only, wipe=False)
    assert memory_only.calls == ["delete"]


def test_every_driver_declares_how_deleted_blocks_are_cleared():
    assert {kind: compliance.driver_protection(kind) for kind in ("libvirt", "vcenter")} == {
        "libvirt": "wipe",
        "vcenter": "fresh_allocation",
    }


@pytest.mark.django_db
def test_the_dengbao_residual_data_check_reads_the_code(monkeypatch):
    check = check_get("ri.data")
    assert check is not None and check.auto is compliance.residual_data
    status, evidence = check.auto(3)
    assert status == Status.CONFORM and "wipe" in evidence
    # A driver that stopped clearing blocks is reported, not assumed.
    monkeypatch.setattr(LibvirtDriver, "residual_protection", "")
    status, evidence = check.auto(3)
    assert status != Status.CONFORM and "未声明" in evidence
