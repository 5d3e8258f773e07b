"""compute's Celery tasks, one module per family, each named by its module path
(``compute.tasks.desktops.desktop_provision``); portal/celery.py routes ``compute.tasks.*`` to the
hypervisor queue. Services start them by that name (``common.tasks.enqueue``); the shared way a
task calls the hypervisor is ``compute.tasks.runner``.

Importing the package loads every module, so the worker's autodiscovery registers all of them.
"""

from compute.tasks import (  # noqa: F401
    desktops,
    edge,
    ha,
    hostnet,
    hosts,
    images,
    inventory,
    migration,
    network,
    snapshots,
    volumes,
)
