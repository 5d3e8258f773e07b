"""The Celery tasks the classroom's services start, by name (``common.tasks.enqueue``): one table.

A task's name is its module path. The seats' power, reset and rebuild are compute's tasks, which
compute's services start. tests/classroom/test_task_names.py checks that every name is a
registered task.
"""

POOL_FULFIL = "compute.classroom.tasks.pool_fulfil"
AUTHORING_PUBLISH = "compute.classroom.tasks.authoring_publish"
IMAGE_VERSION_VOLUME_DELETE = "compute.classroom.tasks.image_version_volume_delete"
