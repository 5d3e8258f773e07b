"""Writes of the compute app, one module per family; this package re-exports every service, so callers
write ``from compute import services`` and ``services.desktop_create(...)``.

- ``inventory``: sites, endpoints, clusters, hosts, storage pools, GPU profiles;
- ``images``: images, image versions, flavors;
- ``desktops``: what people ask of a desktop (create, clone, power, reset, resize, retry, delete);
- ``callbacks``: what tasks report back about a desktop;
- ``snapshots``, ``volumes``: a desktop's snapshots and data disks, with their tasks' reports;
- ``rules``: the checks the others share.

Every service is keyword-only, runs in one transaction, records its audit event there and
starts hypervisor work after the commit (``common.tasks.enqueue``, by the task's name: the
task then finds the row committed). State changes go through the verbs of ``compute.models``
under the row's lock. The ``*_finish``/``*_fail`` services are what tasks call with the
hypervisor's answer.
"""

from compute.services.callbacks import (
    desktop_clone_source_release,
    desktop_destroy_finish,
    desktop_note_error,
    desktop_operation_fail,
    desktop_provision_finish,
    desktop_reset_finish,
    desktop_resize_fail,
    desktop_resize_finish,
    desktop_settle,
)
from compute.services.desktops import (
    POWER_SERVICES,
    desktop_clone,
    desktop_create,
    desktop_delete,
    desktop_hand_over,
    desktop_reboot,
    desktop_reset,
    desktop_resize,
    desktop_retry,
    desktop_start,
    desktop_stop,
    desktops_create,
    desktops_power,
    desktops_reset,
)
from compute.services.hosts import (
    host_add,
    host_capacity_fields,
    host_data_address_set,
    host_heartbeat,
    host_maintenance,
    host_network_node_set,
    host_refresh,
    host_remove,
)
from compute.services.images import (
    flavor_create,
    flavor_update,
    image_create,
    image_import_template,
    image_upload,
    image_version_finish,
    image_version_register,
    image_version_retire,
    image_version_volume_deleted,
    qemu_img_check,
    upload_dir,
)
from compute.services.inventory import (
    cluster_ensure,
    endpoint_refresh,
    endpoint_register,
    endpoint_update,
    inventory_save,
    site_ensure,
)
from compute.services.migration import (
    desktop_migrate,
    evacuation_status,
    host_evacuate,
    migration_cancel,
    migration_candidates,
    migration_rules_check,
)
from compute.services.snapshots import snapshot_create, snapshot_delete, snapshot_finish, snapshot_revert
from compute.services.storage import shared_storage_attach, shared_storage_set
from compute.services.volumes import volume_attach, volume_attach_existing, volume_delete, volume_detach, volume_finish

__all__ = [
    "POWER_SERVICES",
    "cluster_ensure",
    "desktop_clone",
    "desktop_clone_source_release",
    "desktop_create",
    "desktops_create",
    "desktop_delete",
    "desktop_destroy_finish",
    "desktop_hand_over",
    "desktop_migrate",
    "desktop_note_error",
    "desktop_operation_fail",
    "desktop_provision_finish",
    "desktop_reboot",
    "desktop_reset",
    "desktop_reset_finish",
    "desktop_resize",
    "desktop_resize_fail",
    "desktop_resize_finish",
    "desktop_retry",
    "desktop_settle",
    "desktop_start",
    "desktop_stop",
    "desktops_power",
    "host_add",
    "evacuation_status",
    "host_capacity_fields",
    "host_data_address_set",
    "host_evacuate",
    "host_heartbeat",
    "host_maintenance",
    "host_network_node_set",
    "host_refresh",
    "host_remove",
    "desktops_reset",
    "endpoint_refresh",
    "endpoint_register",
    "endpoint_update",
    "flavor_create",
    "flavor_update",
    "image_create",
    "image_import_template",
    "image_upload",
    "image_version_finish",
    "image_version_register",
    "image_version_retire",
    "image_version_volume_deleted",
    "inventory_save",
    "migration_cancel",
    "migration_candidates",
    "migration_rules_check",
    "qemu_img_check",
    "shared_storage_attach",
    "shared_storage_set",
    "site_ensure",
    "snapshot_create",
    "snapshot_delete",
    "snapshot_finish",
    "snapshot_revert",
    "upload_dir",
    "volume_attach",
    "volume_attach_existing",
    "volume_delete",
    "volume_detach",
    "volume_finish",
]
