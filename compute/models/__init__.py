"""Compute's data: the inventory, images and flavors, desktops, and their snapshots and data disks.

Lifecycle changes are verbs on the models (``Desktop.provision()``, ``Volume.begin_detach()``,
``Snapshot.finished()``...): they check the state machine and change fields, nothing else.
Services call them under the row's lock (``compute.locks``) and save.
"""

from compute.models.desktops import Desktop
from compute.models.disks import Snapshot, SnapshotManager, Volume
from compute.models.ha import ClusterHa, HaIncident
from compute.models.images import Flavor, Image, ImageVersion, Visibility
from compute.models.inventory import (
    Cluster,
    Endpoint,
    EndpointLease,
    GpuProfile,
    HaState,
    Host,
    SharedStorage,
    Site,
    StoragePool,
    secret_decrypt,
    secret_encrypt,
)
from compute.models.migrations_log import DesktopMigration, DrsPolicy

__all__ = [
    "Cluster",
    "ClusterHa",
    "Desktop",
    "DesktopMigration",
    "DrsPolicy",
    "Endpoint",
    "EndpointLease",
    "Flavor",
    "GpuProfile",
    "HaIncident",
    "HaState",
    "Host",
    "Image",
    "ImageVersion",
    "SharedStorage",
    "Site",
    "Snapshot",
    "SnapshotManager",
    "StoragePool",
    "Visibility",
    "Volume",
    "secret_decrypt",
    "secret_encrypt",
]
