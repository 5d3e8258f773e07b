"""The Celery tasks the classroom's services start, by name (``common.tasks.enqueue``): one table.

A task's name is its module path, so when compute's tasks move (``compute/tasks/`` as a
package) only the compute rows below change. tests/classroom/test_task_names.py checks that
every name is a registered task.
"""

# compute's tasks, which the classroom's power and reset reuse.
DESKTOP_POWER = "compute.tasks.desktops.desktop_power"
DESKTOP_RESET = "compute.tasks.desktops.desktop_reset"

# The classroom's own (compute/classroom/tasks.py).
POOL_FULFIL = "compute.classroom.tasks.pool_fulfil"
DESKTOP_REBUILD = "compute.classroom.tasks.desktop_rebuild"
AUTHORING_PUBLISH = "compute.classroom.tasks.authoring_publish"
IMAGE_VERSION_VOLUME_DELETE = "compute.classroom.tasks.image_version_volume_delete"
