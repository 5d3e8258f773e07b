"""End to end on the real libvirtd + QEMU with a real Celery worker: the API, the tasks, the driver.

A golden qcow2 made by the test (conftest.qemu_pool), linked clones, the full lifecycle
including snapshot revert and a data-disk attach/detach, and everything cleaned up.
"""

import pytest

from audit.models import AuditEvent
from billing.models import UsageInterval, VolumeMeterCursor
from compute.errors import ComputeError
from compute.models import Desktop, EndpointLease, Snapshot, Volume
from tests.harness.qemu import qemu_domains, qemu_volumes
from tests.harness.waiting import wait_for, wait_state

pytestmark = pytest.mark.libvirt


@pytest.mark.worker
def test_a_student_desktop_lives_its_whole_life_on_qemu(scenario, qemu_env, celery_worker, api):
    client = api.as_user(scenario.student)

    response = client.post(
        "/api/v1/desktops/",
        {"image_version": qemu_env.version.pk, "flavor": qemu_env.flavor.pk, "name": "lab"},
        format="json",
    )
    assert response.status_code == 202, response.content
    desktop = Desktop.objects.get(pk=response.json()["id"])
    assert response.json()["state"] == "provisioning"

    wait_state(desktop, Desktop.State.RUNNING, Desktop.State.ERROR)
    assert desktop.state == Desktop.State.RUNNING, desktop.last_error
    assert desktop.vnc_port and desktop.vnc_port >= 5900
    assert desktop.vm_name in qemu_domains()
    assert f"{desktop.vm_name}-system.qcow2" in qemu_volumes()  # a linked clone in the pool

    assert client.post(f"/api/v1/desktops/{desktop.pk}/stop/").status_code == 202
    wait_state(desktop, Desktop.State.STOPPED)
    assert desktop.vnc_port is None
    assert client.post(f"/api/v1/desktops/{desktop.pk}/stop/").json()["code"] == ComputeError.DESKTOP_INVALID_TRANSITION
    assert client.post(f"/api/v1/desktops/{desktop.pk}/start/").status_code == 202
    wait_state(desktop, Desktop.State.RUNNING)

    response = client.post(f"/api/v1/desktops/{desktop.pk}/snapshots/", {"name": "clean"}, format="json")
    assert response.status_code == 202, response.content
    snapshot = Snapshot.objects.get(pk=response.json()["id"])
    wait_for(lambda: Snapshot.objects.get(pk=snapshot.pk).state == Snapshot.State.READY, what="snapshot ready")
    wait_state(desktop, Desktop.State.RUNNING)

    response = client.post(f"/api/v1/desktops/{desktop.pk}/snapshots/{snapshot.pk}/revert/")
    assert response.status_code == 202, response.content
    wait_for(lambda: Desktop.objects.get(pk=desktop.pk).state in ("running", "stopped"), what="revert done")
    assert Snapshot.objects.get(pk=snapshot.pk).state == Snapshot.State.READY

    desktop.refresh_from_db()
    if desktop.state == Desktop.State.STOPPED:
        client.post(f"/api/v1/desktops/{desktop.pk}/start/")
        wait_state(desktop, Desktop.State.RUNNING)
    response = client.post(f"/api/v1/desktops/{desktop.pk}/volumes/", {"name": "data", "size_gib": 1}, format="json")
    assert response.status_code == 202, response.content
    volume = Volume.objects.get(pk=response.json()["id"])
    wait_for(lambda: Volume.objects.get(pk=volume.pk).state == Volume.State.ATTACHED, what="volume attached")
    volume.refresh_from_db()
    assert volume.target == "vdb"
    assert volume.volume_name in qemu_volumes()
    wait_state(desktop, Desktop.State.RUNNING)

    response = client.delete(f"/api/v1/desktops/{desktop.pk}/volumes/{volume.pk}/")
    assert response.status_code == 202, response.content
    wait_for(lambda: Volume.objects.get(pk=volume.pk).state == Volume.State.DETACHED, what="volume detached")
    assert volume.volume_name in qemu_volumes()  # detached, kept
    wait_state(desktop, Desktop.State.RUNNING)
    assert client.delete(f"/api/v1/volumes/{volume.pk}/").status_code == 202
    wait_for(lambda: Volume.objects.get(pk=volume.pk).state == Volume.State.DELETED, what="volume deleted")
    assert volume.volume_name not in qemu_volumes()
    events = AuditEvent.objects.filter(object_type="compute.volume", object_id=str(volume.pk))
    assert {"volume.attached", "volume.detached", "volume.deleted"} <= set(events.values_list("action", flat=True))
    # While it lay detached the disk was billed on its own, by the real worker's reports.
    detached = UsageInterval.objects.filter(volume_id=volume.pk)
    assert detached.exists() and {piece.disk_gib for piece in detached} == {1}
    assert not VolumeMeterCursor.objects.filter(volume_id=volume.pk).exists()  # closed at deletion

    assert client.delete(f"/api/v1/desktops/{desktop.pk}/").status_code == 202
    wait_state(desktop, Desktop.State.DELETED)
    assert desktop.vm_name not in qemu_domains()
    assert not {v for v in qemu_volumes() if v.startswith(desktop.vm_name)}
    assert not EndpointLease.objects.exists()


@pytest.mark.worker
def test_reset_gives_a_new_overlay_on_the_same_golden_image(scenario, qemu_env, celery_worker):
    from compute import services

    desktop = services.desktop_create(
        actor=scenario.student, tenant=scenario.tenant_a, image_version=qemu_env.version, flavor=qemu_env.flavor
    )
    wait_state(desktop, Desktop.State.RUNNING, Desktop.State.ERROR)
    before = {v for v in qemu_volumes() if v.startswith(desktop.vm_name)}

    services.desktop_reset(actor=scenario.student, desktop=desktop)
    wait_state(desktop, Desktop.State.RUNNING, Desktop.State.STOPPED, Desktop.State.ERROR)

    assert desktop.state == Desktop.State.RUNNING, desktop.last_error
    after = {v for v in qemu_volumes() if v.startswith(desktop.vm_name)}
    assert len(after) == 1 and after != before
    services.desktop_delete(actor=scenario.student, desktop=desktop)
    wait_state(desktop, Desktop.State.DELETED)


@pytest.mark.worker
def test_the_endpoint_concurrency_limit_holds_for_many_clones(scenario, qemu_env, celery_worker):
    """Eight desktops on an endpoint limited to two: never more than two leases at once, all run."""
    import threading

    from compute import services
    from compute.models import Endpoint

    Endpoint.objects.filter(pk=qemu_env.endpoint.pk).update(max_concurrency=2)
    peak = {"value": 0}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak["value"] = max(peak["value"], EndpointLease.objects.filter(endpoint=qemu_env.endpoint).count())
            stop.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        desktops = [
            services.desktop_create(
                actor=scenario.tenant_admin,
                tenant=scenario.tenant_a,
                image_version=qemu_env.version,
                flavor=qemu_env.flavor,
                owner=scenario.student,
            )
            for _ in range(8)
        ]
        for desktop in desktops:
            wait_state(desktop, Desktop.State.RUNNING, Desktop.State.ERROR, timeout=120)
    finally:
        stop.set()
        watcher.join()
    assert all(d.state == Desktop.State.RUNNING for d in desktops), [d.last_error for d in desktops]
    assert 1 <= peak["value"] <= 2
    for desktop in desktops:
        services.desktop_delete(actor=scenario.tenant_admin, desktop=desktop)
    for desktop in desktops:
        wait_state(desktop, Desktop.State.DELETED, timeout=120)


def _qemu(*args: str) -> str:
    import subprocess

    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def test_a_clone_carries_what_was_written_to_its_sources_disk(
    scenario, qemu_env, eager, django_capture_on_commit_callbacks
):
    import json

    from compute import services
    from tests.harness.qemu import POOL_DIR

    with django_capture_on_commit_callbacks(execute=True):
        source = services.desktop_create(
            actor=scenario.student, tenant=scenario.tenant_a, image_version=qemu_env.version, flavor=qemu_env.flavor
        )
    with django_capture_on_commit_callbacks(execute=True):
        services.desktop_stop(actor=scenario.student, desktop=source)
    source.refresh_from_db()
    assert source.state == Desktop.State.STOPPED, source.last_error
    source_disk = POOL_DIR / f"{source.vm_name}-system.qcow2"
    # A marker the golden image does not have, written into the source's own overlay.
    _qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k", str(source_disk))

    with django_capture_on_commit_callbacks(execute=True):
        clone = services.desktop_clone(actor=scenario.student, desktop=source)
    clone.refresh_from_db()
    source.refresh_from_db()
    assert clone.state == Desktop.State.RUNNING, clone.last_error
    assert source.state == Desktop.State.STOPPED
    clone_disk = POOL_DIR / f"{clone.vm_name}-system.qcow2"

    read = _qemu("qemu-io", "-r", "-U", "-f", "qcow2", "-c", "read -P 0x5a 1M 64k", str(clone_disk))
    assert "read 65536/65536 bytes" in read and "verification failed" not in read
    assert "identical" in _qemu("qemu-img", "compare", "-U", str(source_disk), str(clone_disk))
    # The source keeps its backing chain to the golden image; the copy stands alone.
    info = json.loads(_qemu("qemu-img", "info", "-U", "--output=json", str(source_disk)))
    assert info["backing-filename"].endswith(qemu_env.version.volume)
    assert "backing-filename" not in json.loads(_qemu("qemu-img", "info", "-U", "--output=json", str(clone_disk)))

    for desktop in (clone, source):
        with django_capture_on_commit_callbacks(execute=True):
            services.desktop_delete(actor=scenario.student, desktop=desktop)
    assert not {f"{source.vm_name}-system.qcow2", f"{clone.vm_name}-system.qcow2"} & qemu_volumes()
    assert not {source.vm_name, clone.vm_name} & qemu_domains()


def test_a_detached_disk_is_kept_moves_to_another_desktop_and_is_deleted_on_request(
    scenario, qemu_env, eager, django_capture_on_commit_callbacks, api
):
    from compute import services
    from compute.hypervisor import driver_for
    from tenants.models import Quota
    from tenants.services import quota_set

    quota_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, limits={"disk_gib": 10})

    def run(fn, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            result = fn(**kwargs)
        result.refresh_from_db()
        return result

    def disk_used() -> int:
        return Quota.objects.get(scope="tenant", tenant=scenario.tenant_a).used_disk_gib

    first, second = (
        run(
            services.desktop_create,
            actor=scenario.student,
            tenant=scenario.tenant_a,
            image_version=qemu_env.version,
            flavor=qemu_env.flavor,
        )
        for _ in range(2)
    )
    for desktop in (first, second):
        run(services.desktop_stop, actor=scenario.student, desktop=desktop)
    assert disk_used() == 2

    volume = run(services.volume_attach, actor=scenario.student, desktop=first, size_gib=2, name="thesis")
    assert volume.state == Volume.State.ATTACHED, volume.last_error
    assert disk_used() == 4
    volume = run(services.volume_detach, actor=scenario.student, volume=volume)
    assert (volume.state, volume.desktop) == (Volume.State.DETACHED, None)
    assert volume.volume_name in qemu_volumes()
    assert disk_used() == 4  # a kept disk keeps its quota

    stranger_desktop = services.desktop_create(
        actor=scenario.stranger, tenant=scenario.tenant_b, image_version=qemu_env.version, flavor=qemu_env.flavor
    )
    refused = api.as_user(scenario.stranger).post(
        f"/api/v1/desktops/{stranger_desktop.pk}/volumes/", {"volume": volume.pk}, format="json"
    )
    assert refused.status_code == 400 and "volume" in refused.json()["detail"]
    client = api.as_user(scenario.student)  # the same client object, authenticated as the student again
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/desktops/{second.pk}/volumes/", {"volume": volume.pk}, format="json")
    assert response.status_code == 202, response.content
    volume.refresh_from_db()
    assert (volume.state, volume.desktop) == (Volume.State.ATTACHED, second)
    assert volume.volume_name in {d.volume for d in driver_for(qemu_env.endpoint).get_vm(second.vm_name).disks}
    in_use = client.delete(f"/api/v1/volumes/{volume.pk}/")
    assert in_use.status_code == 409 and in_use.json()["code"] == ComputeError.VOLUME_IN_USE

    run(services.volume_detach, actor=scenario.student, volume=volume)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/v1/volumes/{volume.pk}/").status_code == 202
    volume.refresh_from_db()
    assert volume.state == Volume.State.DELETED
    assert volume.volume_name not in qemu_volumes()
    assert disk_used() == 2

    # A disk attached when its desktop is deleted goes with it, quota and all.
    doomed = run(services.volume_attach, actor=scenario.student, desktop=second, size_gib=3)
    assert disk_used() == 5
    for desktop in (first, second):
        run(services.desktop_delete, actor=scenario.student, desktop=desktop)
    doomed.refresh_from_db()
    assert doomed.state == Volume.State.DELETED
    assert doomed.volume_name not in qemu_volumes()
    assert disk_used() == 0
