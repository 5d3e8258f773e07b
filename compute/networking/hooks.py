"""compute's handlers of network's hooks (network may not import compute): registered at start-up by
``ComputeConfig.ready``; each starts the task that converges the hypervisors."""

from common.tasks import enqueue
from network import hooks


def _on_network_changed(*, network_id: int) -> None:
    # Another tenant's new subnet changes what default groups keep out.
    enqueue("compute.tasks.network.security_groups_sync")


def _on_network_deleted(*, network_id: int, endpoints: list[str]) -> None:
    enqueue("compute.tasks.network.network_remove", network_id, endpoints)


def _on_security_group_changed(*, group_id: int) -> None:
    enqueue("compute.tasks.network.security_group_apply", group_id)


def _on_nic_changed(*, desktop_id: int) -> None:
    enqueue("compute.tasks.network.desktop_filters_apply", desktop_id)


def _on_forwarding_changed(*, eip_id: int) -> None:
    enqueue("compute.tasks.network.forwarding_apply", eip_id)


def register_hooks() -> None:
    """Called once at start-up (``ComputeConfig.ready``), in web and worker alike."""
    hooks.register("network_changed", _on_network_changed)
    hooks.register("network_deleted", _on_network_deleted)
    hooks.register("security_group_changed", _on_security_group_changed)
    hooks.register("nic_changed", _on_nic_changed)
    hooks.register("forwarding_changed", _on_forwarding_changed)
