"""Faults: unreachable endpoints are transient DriverErrors, vanished VMs permanent ones, and a
driver whose connection broke works again once the endpoint is back."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from pathlib import Path

import libvirt
import pytest

from compute.drivers import DriverError, ErrorCode, VMSpec, open_driver
from compute.drivers.libvirt import LibvirtDriver
from tests.harness.qemu import QEMU_URI
from tests.harness.vcsim import Vcsim


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_transient(err: pytest.ExceptionInfo, code: ErrorCode = ErrorCode.UNREACHABLE) -> None:
    assert isinstance(err.value, DriverError)
    assert err.value.permanent is False and err.value.code == code, repr(err.value)


def test_dead_libvirt_endpoint_is_transient():
    driver = open_driver("libvirt", "qemu+tcp://127.0.0.1:1/system")
    for call in (driver.check, driver.list_vms, lambda: driver.get_vm("x")):
        with pytest.raises(DriverError) as err:
            call()
        assert_transient(err)


def test_dead_vcenter_endpoint_is_transient():
    driver = open_driver("vcenter", f"http://127.0.0.1:{free_port()}/sdk", "user", "pass")
    for call in (driver.check, driver.list_vms, lambda: driver.start("x")):
        with pytest.raises(DriverError) as err:
            call()
        assert_transient(err)


@pytest.mark.libvirt  # libvirt asks the local daemon about a scheme it has no driver for: without it, "no socket"
def test_an_unknown_libvirt_uri_scheme_is_permanent():
    with pytest.raises(DriverError) as err:
        open_driver("libvirt", "nosuch:///system").check()
    assert err.value.permanent


def test_vanished_libvirt_vm_is_permanent_not_found(test_driver, test_conn, test_golden, uid):
    name = f"vm-{uid}"
    spec = VMSpec(name=name, vcpus=1, memory_mib=128, image_pool="default-pool", image_volume=test_golden)
    test_driver.create_vm(spec, start=False)
    test_conn.lookupByName(name).undefine()  # removed behind the portal's back
    for call in (
        lambda: test_driver.get_vm(name),
        lambda: test_driver.start(name),
        lambda: test_driver.snapshot_create(name, "s"),
        lambda: test_driver.reset_system_disk(name),
    ):
        with pytest.raises(DriverError) as err:
            call()
        assert err.value.permanent and err.value.code == ErrorCode.NOT_FOUND


@pytest.mark.vcsim
def test_vanished_vcenter_vm_is_permanent_not_found(vcsim, uid):
    portal, operator = vcsim.driver(), vcsim.driver()
    name = f"desk-{uid}"
    try:
        portal.create_vm(VMSpec(name=name, vcpus=1, memory_mib=512, template="template-linux"), start=True)
        operator.delete_vm(name)  # an operator deletes it in the vSphere client
        for call in (lambda: portal.get_vm(name), lambda: portal.start(name), lambda: portal.snapshot_list(name)):
            with pytest.raises(DriverError) as err:
                call()
            assert err.value.permanent and err.value.code == ErrorCode.NOT_FOUND
    finally:
        portal.delete_vm(name)
        portal.close()
        operator.close()


@pytest.mark.vcsim
def test_vcenter_going_away_is_transient_and_the_driver_recovers():
    sim = Vcsim("-vm", "2", "-template", "")
    port = sim.port
    driver = sim.driver()
    try:
        assert len(driver.list_vms()) == 2
        sim.stop()
        for call in (driver.list_vms, lambda: driver.start("DC0_C0_RP0_VM0")):
            with pytest.raises(DriverError) as err:
                call()
            assert_transient(err)
        # Back on the same address (a restarted vCenter): a new session, transparently.
        sim = Vcsim("-vm", "3", "-template", "", "-l", f"127.0.0.1:{port}")
        assert len(driver.list_vms()) == 3
    finally:
        driver.close()
        sim.stop()


class UnixRelay:
    """Forwards a unix socket to libvirtd's, so a test can cut the connection and restore it."""

    def __init__(self, path: str, target: str):
        self.path, self.target = path, target
        self.socks: list[socket.socket] = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.server.close()
        for sock in self.socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        os.unlink(self.path)


@pytest.mark.libvirt
def test_libvirtd_connection_cut_is_transient_and_reopened(qemu_driver):
    target = "/var/run/libvirt/libvirt-sock"
    if QEMU_URI != "qemu:///system" or not Path(target).exists():
        pytest.fail(f"this test needs the local qemu:///system socket at {target}")
    path = os.path.join(tempfile.mkdtemp(prefix="cc-relay-"), "libvirt-sock")
    relay = UnixRelay(path, target)
    driver = LibvirtDriver(f"qemu+unix:///system?socket={path}")
    try:
        driver.check()
        relay.stop()  # libvirtd "goes away"
        with pytest.raises(DriverError) as err:
            driver.list_vms()
        assert_transient(err)
        with pytest.raises(DriverError) as err:
            driver.check()  # still away: reopening fails the same way
        assert_transient(err)
        relay = UnixRelay(path, target)  # and comes back
        driver.check()
        assert isinstance(driver.list_vms(), list)
    finally:
        driver.close()
        with contextlib.suppress(OSError):
            relay.stop()
        os.rmdir(os.path.dirname(path))


def test_libvirt_error_codes_survive_in_the_cause(test_driver):
    with pytest.raises(DriverError) as err:
        test_driver.get_vm("no-such-vm")
    assert isinstance(err.value.__cause__, libvirt.libvirtError)
