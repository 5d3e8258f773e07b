"""compute's tasks are named by their module paths, which is how services start them and how beat names them."""

import importlib
import importlib.util

from django.apps import apps as django_apps

from common.tasks import task_named
from portal.celery import app


def _compute_task_names() -> list[str]:
    import compute.tasks  # noqa: F401 - what the worker's autodiscovery imports

    return sorted(name for name in app.tasks if name.startswith("compute.tasks."))


def test_every_compute_task_is_found_by_the_name_it_is_registered_under():
    names = _compute_task_names()
    assert "compute.tasks.desktops.desktop_provision" in names
    assert "compute.tasks.network.dhcp_sync" in names
    for name in names:
        assert task_named(name).name == name


def test_every_periodic_task_names_a_task_that_exists():
    for config in django_apps.get_app_configs():  # as the worker's autodiscovery does
        if importlib.util.find_spec(f"{config.name}.tasks"):
            importlib.import_module(f"{config.name}.tasks")
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry["task"]


def test_compute_tasks_go_to_the_hypervisor_queue():
    for name in _compute_task_names():
        assert app.amqp.router.route({}, name)["queue"].name == "hypervisor", name
