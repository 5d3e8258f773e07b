"""Fault tests on the real libvirtd with real Celery workers: a hypervisor that goes away, a worker killed mid-task.

The endpoint reaches libvirtd through a UNIX socket the test can cut or stall
(tests/harness/qemu.py's LibvirtPath): to the portal that is exactly a remote hypervisor going away.
"""

import os
import signal

import pytest

from compute import services
from compute.models import Desktop, Endpoint, EndpointLease
from tenants.models import Reservation
from tests.compute.conftest import make_env
from tests.harness.qemu import LibvirtPath, qemu_domains
from tests.harness.waiting import wait_for, wait_state
from tests.harness.worker import start_worker, stop_worker

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]


@pytest.fixture
def path():
    p = LibvirtPath()
    yield p
    p.close()


@pytest.fixture
def proxied_env(scenario, qemu_pool, path):
    return make_env(
        scenario,
        url=path.uri,
        pool=qemu_pool["pool"],
        volume=qemu_pool["volume"],
        size_bytes=qemu_pool["size"],
        name="proxied",
        retry_backoff=0.3,
        max_retries=3,
    )


def _create(scenario, env):
    return services.desktop_create(
        actor=scenario.student, tenant=scenario.tenant_a, image_version=env.version, flavor=env.flavor
    )


def test_an_unreachable_hypervisor_is_retried_then_errors_and_releases_the_quota(
    scenario, proxied_env, path, celery_worker
):
    path.cut()

    desktop = _create(scenario, proxied_env)
    reservation = Reservation.objects.get(pk=int(desktop.quota_reservation))
    assert reservation.state == Reservation.State.RESERVED

    wait_state(desktop, Desktop.State.ERROR, timeout=90)
    assert desktop.attempts == 3  # every transient failure was retried, then it gave up
    assert desktop.error_reason  # readable: what failed and why
    assert "connect" in desktop.error_reason.lower() or "socket" in desktop.error_reason.lower()
    reservation.refresh_from_db()
    assert reservation.state == Reservation.State.RELEASED
    assert desktop.quota_reservation == ""
    assert not EndpointLease.objects.exists()
    assert desktop.vm_name not in qemu_domains()

    # The hypervisor comes back; the user retries and gets a desktop.
    path.restore()
    services.desktop_retry(actor=scenario.student, desktop=desktop)
    wait_state(desktop, Desktop.State.RUNNING, Desktop.State.ERROR, timeout=90)
    assert desktop.state == Desktop.State.RUNNING, desktop.last_error
    services.desktop_delete(actor=scenario.student, desktop=desktop)
    wait_state(desktop, Desktop.State.DELETED)


def test_a_hypervisor_back_before_the_last_retry_gives_a_running_desktop(scenario, proxied_env, path, celery_worker):
    Endpoint.objects.filter(pk=proxied_env.endpoint.pk).update(retry_backoff=1.5, max_retries=5)
    path.cut()

    desktop = _create(scenario, proxied_env)
    wait_for(lambda: Desktop.objects.get(pk=desktop.pk).attempts >= 1, timeout=30, what="a failed attempt")
    path.restore()

    wait_state(desktop, Desktop.State.RUNNING, Desktop.State.ERROR, timeout=90)
    assert desktop.state == Desktop.State.RUNNING, desktop.last_error
    assert desktop.last_error == ""
    assert Reservation.objects.get(pk=int(desktop.quota_reservation)).state == Reservation.State.COMMITTED
    services.desktop_delete(actor=scenario.student, desktop=desktop)
    wait_state(desktop, Desktop.State.DELETED)


def test_a_worker_killed_mid_task_is_replaced_and_the_desktop_ends_consistent(
    scenario, proxied_env, path, transactional_db
):
    from portal.celery import app

    app.control.purge()
    first = start_worker(visibility_timeout=3)
    try:
        path.stall()  # the hypervisor call hangs: the task is in the middle of its work
        desktop = _create(scenario, proxied_env)
        wait_for(lambda: EndpointLease.objects.filter(endpoint=proxied_env.endpoint).exists(), what="task started")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop_worker(first)
    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.PROVISIONING

    path.restore()
    second = start_worker(visibility_timeout=3)
    try:
        wait_state(desktop, Desktop.State.RUNNING, Desktop.State.ERROR, timeout=90)
        assert desktop.state == Desktop.State.RUNNING, desktop.last_error
        assert desktop.vnc_port
        assert sum(1 for name in qemu_domains() if name == desktop.vm_name) == 1
        wait_for(lambda: not EndpointLease.objects.exists(), timeout=10, what="the lease released")
        assert Reservation.objects.get(pk=int(desktop.quota_reservation)).state == Reservation.State.COMMITTED
        services.desktop_delete(actor=scenario.student, desktop=desktop)
        wait_state(desktop, Desktop.State.DELETED)
        assert desktop.vm_name not in qemu_domains()
    finally:
        stop_worker(second)


def test_a_running_task_run_twice_does_no_harm(scenario, qemu_env, celery_worker):
    """The provisioning task delivered again after it finished: it sees the state and does nothing."""
    from compute.tasks.desktops import desktop_provision

    desktop = _create(scenario, qemu_env)
    wait_state(desktop, Desktop.State.RUNNING, Desktop.State.ERROR)

    assert desktop_provision.apply(args=(desktop.pk,)).get() == "skipped"
    desktop_provision.apply_async(args=(desktop.pk,), queue="hypervisor")

    desktop.refresh_from_db()
    assert desktop.state == Desktop.State.RUNNING
    services.desktop_delete(actor=scenario.student, desktop=desktop)
    wait_state(desktop, Desktop.State.DELETED)
