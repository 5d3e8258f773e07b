"""The state verbs of snapshots and data disks (compute.models), and where compute locks rows (compute.locks)."""

import re
from pathlib import Path

import pytest

from common.errors import Conflict, InvalidInput
from compute.errors import ComputeError
from compute.models import Desktop, Endpoint, Snapshot, Volume

COMPUTE = Path(__file__).resolve().parents[2] / "compute"


def test_only_a_ready_snapshot_is_reverted_or_deleted():
    snapshot = Snapshot(state=Snapshot.State.CREATING)
    with pytest.raises(Conflict) as excinfo:
        snapshot.begin("revert")
    assert excinfo.value.code == ComputeError.SNAPSHOT_NOT_READY

    snapshot.state = Snapshot.State.READY
    snapshot.begin("delete")
    assert snapshot.state == Snapshot.State.DELETING


@pytest.mark.parametrize(
    ("op", "error", "state"),
    [
        ("create", "disk full", Snapshot.State.ERROR),
        ("revert", "disk full", Snapshot.State.READY),
        ("delete", "disk full", Snapshot.State.READY),
        ("create", "", Snapshot.State.READY),
        ("delete", "", Snapshot.State.DELETED),
    ],
)
def test_a_snapshot_ends_where_its_task_left_it(op, error, state):
    snapshot = Snapshot(state=Snapshot.IN_PROGRESS[op])
    snapshot.finished(op=op, error=error)
    assert (snapshot.state, snapshot.last_error) == (state, error)


def test_a_detached_disk_goes_only_onto_a_desktop_of_its_endpoint():
    here, there = Endpoint(pk=1), Endpoint(pk=2)
    volume = Volume(state=Volume.State.DETACHED, endpoint=here)
    with pytest.raises(InvalidInput) as excinfo:
        volume.begin_attach(Desktop(pk=7, endpoint=there))
    assert excinfo.value.code == ComputeError.VOLUME_OTHER_ENDPOINT

    volume.begin_attach(Desktop(pk=8, endpoint=here))
    assert (volume.state, volume.desktop_id) == (Volume.State.ATTACHING, 8)
    with pytest.raises(Conflict) as excinfo:
        volume.begin_attach(Desktop(pk=9, endpoint=here))
    assert excinfo.value.code == ComputeError.VOLUME_IN_USE


def test_an_attached_disk_is_detached_before_it_is_deleted():
    volume = Volume(state=Volume.State.ATTACHED, desktop=Desktop(pk=3))
    with pytest.raises(Conflict) as excinfo:
        volume.begin_deletion()
    assert excinfo.value.code == ComputeError.VOLUME_IN_USE

    volume.begin_detach()
    volume.detached()
    volume.begin_deletion()
    assert (volume.state, volume.desktop_id) == (Volume.State.DELETING, None)


def test_a_disk_that_could_not_be_deleted_stays_detached():
    volume = Volume(state=Volume.State.DELETING)
    volume.fail(op="delete", reason="busy")
    assert (volume.state, volume.last_error) == (Volume.State.DETACHED, "busy")


def test_compute_locks_rows_only_in_its_lock_helpers():
    """One lock convention (compute/locks.py); the classroom and the drivers are not compute's core."""
    offenders = [
        str(path.relative_to(COMPUTE))
        for path in COMPUTE.rglob("*.py")
        if path.name != "locks.py"
        and not {"classroom", "drivers", "migrations"} & set(path.relative_to(COMPUTE).parts)
        and re.search(r"\bselect_for_update\(", path.read_text())
    ]
    assert offenders == []
