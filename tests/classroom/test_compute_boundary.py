"""compute is the only writer of compute's rows: the classroom changes desktops and image versions
through compute's services (desktops_power, desktops_reset, desktop_hand_over, image_version_retire),
never by saving, updating or locking them itself."""

import re
from pathlib import Path

import compute.tasks
from compute.classroom import tasks as classroom_tasks

CLASSROOM = Path(__file__).resolve().parents[2] / "compute" / "classroom"
COMPUTE_MODELS = r"(Desktop|ImageVersion|Image|Volume|Snapshot|Endpoint|Flavor)"
WRITES = [
    rf"\b{COMPUTE_MODELS}\.objects\b[^\n]*\.(update|create|bulk_create|select_for_update|delete)\(",
    r"\b(desktop|version)\.(save|delete)\(",
    r"\bdesktop\.(occupy|power|start|stop|reboot|begin_deletion|provision)\(",
    r"\bversion\.(retire)\(",
]


def _sources():
    for path in CLASSROOM.rglob("*.py"):
        if "migrations" not in path.parts and path.name != "demo.py":
            yield path, path.read_text()


def test_the_classroom_never_writes_or_locks_a_compute_row_itself():
    offenders = [
        f"{path.relative_to(CLASSROOM)}: {match.group(0)}"
        for path, text in _sources()
        for pattern in WRITES
        for match in re.finditer(pattern, text)
    ]
    assert offenders == []


def test_the_classroom_starts_no_compute_task_by_name_and_has_no_desktop_task_of_its_own():
    offenders = [str(path.relative_to(CLASSROOM)) for path, text in _sources() if '"compute.tasks.' in text]
    assert offenders == []
    assert not hasattr(classroom_tasks, "desktop_rebuild")
    # compute's tasks are reached by their module path only: no re-exports at the package level.
    assert not hasattr(compute.tasks, "desktop_power") and not hasattr(compute.tasks, "desktop_reset")
