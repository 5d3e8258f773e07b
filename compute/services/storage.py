"""Writes of a cluster's shared storage: the pool every host of the cluster sees at the same path.

``shared_storage_set`` records it and sets the pool up on every host of the cluster (NFS mounted by
libvirt, or a directory the hosts already mount); ``shared_storage_attach`` does the same for one host
(``host_add`` calls it for a host joining such a cluster). Each host then has a ``distributed``
``StoragePool`` row of the pool's name: placement serves a golden image there on any host of the
cluster, and migration moves such desktops without copying their disks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import InvalidInput, NotFound
from compute.drivers.base import DriverError, PoolSpec
from compute.errors import ComputeError
from compute.hypervisor import driver_for
from compute.models import Cluster, Endpoint, Host, SharedStorage, StoragePool
from compute.services.rules import require_system_admin

if TYPE_CHECKING:
    from tenants.models import User


def pool_spec(storage: SharedStorage) -> PoolSpec:
    return PoolSpec(
        name=storage.pool,
        kind=storage.kind,
        path=storage.path,
        source_host=storage.source_host,
        source_path=storage.source_path,
    )


def _check(kind: str, pool: str, path: str, source_host: str, source_path: str) -> None:
    if kind not in SharedStorage.Kind.values:
        raise InvalidInput(_("共享存储类型只能是 netfs 或 dir。"), code=ComputeError.SHARED_STORAGE_INVALID)
    if not pool or not path.startswith("/"):
        raise InvalidInput(_("共享存储需要存储池名称和绝对挂载路径。"), code=ComputeError.SHARED_STORAGE_INVALID)
    if kind == SharedStorage.Kind.NETFS and not (source_host and source_path.startswith("/")):
        raise InvalidInput(_("NFS 共享存储需要服务器地址和导出路径。"), code=ComputeError.SHARED_STORAGE_INVALID)


def shared_storage_attach(*, host: Host, storage: SharedStorage | None = None) -> StoragePool | None:
    """Set the cluster's shared pool up on ``host`` (idempotent); None when its cluster has none.

    Raises InvalidInput ``shared_storage_failed`` with the host's reason when the pool cannot be
    mounted or started there.
    """
    endpoint = host.endpoint
    storage = storage or SharedStorage.of(endpoint.cluster_id)
    if storage is None:
        return None
    try:
        driver_for(endpoint).shared_pool_ensure(pool_spec(storage))
    except DriverError as exc:
        raise InvalidInput(
            _("主机“%(host)s”无法挂载共享存储“%(pool)s”：%(reason)s")
            % {"host": host.name, "pool": storage.pool, "reason": exc.message},
            code=ComputeError.SHARED_STORAGE_FAILED,
            detail={"host": host.name, "reason": exc.message},
        ) from exc
    pool, _created = StoragePool.objects.update_or_create(
        endpoint=endpoint,
        name=storage.pool,
        defaults={"kind": StoragePool.Kind.DISTRIBUTED, "replicas": 2},
    )
    return pool


def shared_storage_set(
    *,
    actor: User | None,
    site: str,
    cluster: str,
    pool: str,
    kind: str,
    path: str,
    source_host: str = "",
    source_path: str = "",
    unsafe_migration: bool = False,
) -> SharedStorage:
    """Give a cluster its shared storage (or change it) and set the pool up on each of its hosts.

    A host that cannot mount it refuses the whole change (nothing is saved): the hosts of a cluster
    must all see the same storage.
    """
    if actor is not None:
        require_system_admin(actor)
    _check(kind, pool, path, source_host, source_path)
    row = Cluster.objects.filter(site__slug=site, name=cluster).first()
    if row is None:
        raise NotFound(
            _("站点“%(site)s”没有集群“%(cluster)s”。") % {"site": site, "cluster": cluster},
            code=ComputeError.CLUSTER_NOT_FOUND,
        )
    storage = SharedStorage.of(row.pk) or SharedStorage(cluster=row)
    storage.pool, storage.kind, storage.path = pool, kind, path
    storage.source_host, storage.source_path = source_host, source_path
    storage.unsafe_migration = unsafe_migration
    hosts = list(
        Host.objects.select_related("endpoint").filter(
            endpoint__cluster=row, endpoint__kind=Endpoint.Kind.LIBVIRT, endpoint__is_active=True
        )
    )
    for host in hosts:  # the hypervisors first: a host that cannot mount it saves nothing
        shared_storage_attach(host=host, storage=storage)
    with transaction.atomic():
        storage.save()
        event_record(
            action=Action.INVENTORY_CHANGED,
            actor=actor,
            target=storage,
            detail={
                "kind": "sharedstorage",
                "cluster": cluster,
                "pool": pool,
                "type": kind,
                "path": path,
                "source": f"{source_host}:{source_path}" if source_host else "",
                "unsafe_migration": unsafe_migration,
                "hosts": [h.name for h in hosts],
            },
        )
    return storage
