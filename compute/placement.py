"""Placement: which endpoint and host a new desktop goes to.

The cluster kind follows the flavor (a GPU profile needs a GPU cluster); the host must
carry the golden image's endpoint and have room: its capacity (from the driver's
``host_info``, times the cluster's overcommit ratios) less what the portal has already
placed there. Among hosts with room, the cluster's policy decides: ``spread`` takes
the emptiest, ``pack`` the fullest that still fits.
"""

from dataclasses import dataclass
from types import SimpleNamespace

from django.db.models import Count, Q, Sum
from django.utils.translation import gettext as _

from common.errors import InvalidInput
from compute.errors import ComputeError
from compute.models import (
    Cluster,
    Desktop,
    DesktopMigration,
    Endpoint,
    Flavor,
    HaState,
    Host,
    ImageVersion,
    Site,
    StoragePool,
)

# Desktops that hold capacity on their host: everything not deleted.
_HOLDING = ~Q(desktops__state=Desktop.State.DELETED)


@dataclass(frozen=True)
class Placement:
    endpoint: Endpoint
    host: Host | None
    storage_pool: str
    gpu_device: str = ""


def _pool_name(endpoint: Endpoint, version: ImageVersion | None) -> str:
    if version and version.pool:
        return version.pool
    pool = StoragePool.objects.filter(endpoint=endpoint).order_by("-is_default", "name").first()
    return pool.name if pool else ""


def _free_gpu(host: Host, wanted: int) -> str | None:
    used = set()
    for device in (
        Desktop.objects.filter(host=host).exclude(state=Desktop.State.DELETED).values_list("gpu_device", flat=True)
    ):
        used.update(filter(None, device.split(",")))
    free = [d for d in host.gpu_devices if d not in used]
    return ",".join(free[:wanted]) if len(free) >= wanted else None


def _candidate_hosts(*, kind: str, image_version: ImageVersion | None, endpoint: Endpoint | None, site: Site | None):
    """Enabled hosts of the right cluster kind that can use the golden image, with what is placed on them.

    The image's own endpoint serves it; so does every host of its cluster whose pool of the image's
    name is shared storage (``distributed``: mounted by every host of the cluster).
    """
    hosts = Host.objects.filter(
        is_active=True,
        state=Host.State.ENABLED,
        ha_state=HaState.OK,  # a suspect or fenced host takes nothing until an admin clears it (compute/ha/)
        endpoint__is_active=True,
        endpoint__cluster__kind=kind,
    ).select_related("endpoint__cluster")
    if image_version is not None:
        image_endpoint = image_version.endpoint
        shared = StoragePool.objects.filter(
            kind=StoragePool.Kind.DISTRIBUTED,
            name=_pool_name(image_endpoint, image_version),
            endpoint__cluster=image_endpoint.cluster_id,
        ).values("endpoint_id")
        hosts = hosts.filter(Q(endpoint=image_endpoint.pk) | Q(endpoint__in=shared))
    if endpoint is not None:
        hosts = hosts.filter(endpoint=endpoint)
    if site is not None:
        hosts = hosts.filter(endpoint__site=site)
    return list(
        hosts.annotate(
            placed_mib=Sum("desktops__memory_mib", filter=_HOLDING, default=0),
            placed_vcpus=Sum("desktops__vcpus", filter=_HOLDING, default=0),
            placed=Count("desktops", filter=_HOLDING),
        ).order_by("pk")
    )


def _free(host: Host) -> tuple[float, float]:
    """Free memory (MiB) and vCPUs of an annotated host, after the cluster's overcommit."""
    cluster = host.endpoint.cluster
    mem_capacity = float(host.memory_mib) * float(cluster.memory_overcommit)
    cpu_capacity = float(host.cpus) * float(cluster.cpu_overcommit)
    return mem_capacity - host.placed_mib, cpu_capacity - host.placed_vcpus


def _fitting(candidates: list[Host], flavor: Flavor) -> list[tuple[float, Host, str]]:
    fitting = []
    for host in candidates:
        free_mib, free_cpu = _free(host)
        if free_mib < flavor.memory_mib or free_cpu < flavor.vcpus:
            continue
        gpu_device = ""
        if flavor.gpu_profile_id:
            gpu_device = _free_gpu(host, flavor.gpus)
            if gpu_device is None:
                continue
        fitting.append((free_mib, host, gpu_device))
    return fitting


def place(
    *,
    flavor: Flavor,
    image_version: ImageVersion | None,
    endpoint: Endpoint | None = None,
    site: Site | None = None,
) -> Placement:
    """Choose the host; raises InvalidInput ``no_host``/``no_capacity``/``flavor_too_large`` when none fits.

    Hosts in maintenance or down, or that HA holds (suspect, fenced), take no new desktop. Among those
    with room the cluster's policy decides: ``spread`` the one with the most free memory, ``pack`` the one
    with the least.
    """
    kind = Cluster.Kind.GPU if flavor.gpu_profile_id else Cluster.Kind.GENERAL
    candidates = _candidate_hosts(kind=kind, image_version=image_version, endpoint=endpoint, site=site)
    if not candidates:
        raise InvalidInput(
            _("没有可用的%(kind)s集群主机承载该镜像。") % {"kind": Cluster.Kind(kind).label},
            code=ComputeError.NO_HOST,
        )
    if all(flavor.memory_mib > h.memory_mib or flavor.vcpus > h.cpus * 4 for h in candidates if h.memory_mib):
        raise InvalidInput(
            _("规格“%(flavor)s”超过了所有主机的容量。") % {"flavor": flavor.name}, code=ComputeError.FLAVOR_TOO_LARGE
        )
    fitting = _fitting(candidates, flavor)
    if not fitting:
        raise InvalidInput(_("所有主机的剩余容量都不足，请稍后再试或联系管理员。"), code=ComputeError.NO_CAPACITY)
    policy = candidates[0].endpoint.cluster.policy
    if policy == Cluster.Policy.PACK:
        _free_mib, host, gpu_device = min(fitting, key=lambda item: (item[0], item[1].pk))
    else:
        _free_mib, host, gpu_device = max(fitting, key=lambda item: (item[0], -item[1].pk))
    return Placement(
        endpoint=host.endpoint, host=host, storage_pool=_pool_name(host.endpoint, image_version), gpu_device=gpu_device
    )


def resize_fit(*, desktop: Desktop, flavor: Flavor) -> str:
    """Whether the desktop's host takes it at ``flavor`` (a resize never moves a desktop); its GPU devices.

    The desktop's own share is left out of the host's placed load. A GPU profile needs a
    GPU cluster and free devices on the same host; the devices it already holds count as free.
    Raises InvalidInput with ``flavor_needs_gpu_cluster``, ``flavor_too_large`` or ``no_capacity``.
    """
    endpoint = desktop.endpoint
    if flavor.gpu_profile_id and endpoint.cluster.kind != Cluster.Kind.GPU:
        raise InvalidInput(
            _("规格“%(flavor)s”需要 GPU 集群，而该桌面所在的集群没有 GPU。") % {"flavor": flavor.name},
            code=ComputeError.FLAVOR_NEEDS_GPU_CLUSTER,
        )
    host = desktop.host
    if host is None:
        return ""  # an imported VM, placed by vCenter: capacity is vCenter's to judge
    if host.memory_mib and (flavor.memory_mib > host.memory_mib or flavor.vcpus > host.cpus * 4):
        raise InvalidInput(
            _("规格“%(flavor)s”超过了主机的容量。") % {"flavor": flavor.name}, code=ComputeError.FLAVOR_TOO_LARGE
        )
    others = Desktop.objects.filter(host=host).exclude(state=Desktop.State.DELETED).exclude(pk=desktop.pk)
    placed = others.aggregate(mib=Sum("memory_mib", default=0), vcpus=Sum("vcpus", default=0))
    cluster = endpoint.cluster
    if host.memory_mib and (
        float(host.memory_mib) * float(cluster.memory_overcommit) - placed["mib"] < flavor.memory_mib
        or float(host.cpus) * float(cluster.cpu_overcommit) - placed["vcpus"] < flavor.vcpus
    ):
        raise InvalidInput(_("主机剩余容量不足，无法调整到该规格。"), code=ComputeError.NO_CAPACITY)
    if not flavor.gpu_profile_id:
        return ""
    used = set()
    for device in others.values_list("gpu_device", flat=True):
        used.update(filter(None, device.split(",")))
    free = [d for d in host.gpu_devices if d not in used]
    if len(free) < flavor.gpus:
        raise InvalidInput(_("主机上空闲的 GPU 不足。"), code=ComputeError.NO_CAPACITY)
    own = [d for d in desktop.gpu_device.split(",") if d in free]
    chosen = own[: flavor.gpus] + [d for d in free if d not in own][: max(0, flavor.gpus - len(own))]
    return ",".join(chosen)


def migration_fit(*, desktop: Desktop) -> list[Host]:
    """Hosts a desktop could move to: enabled hosts of its cluster and site (not its own) with room for it,
    best first by the cluster's policy (``spread``: the emptiest; ``pack``: the fullest that fits)."""
    source = desktop.host
    endpoint = desktop.endpoint
    hosts = (
        Host.objects.filter(
            is_active=True,
            state=Host.State.ENABLED,
            endpoint__is_active=True,
            endpoint__cluster=endpoint.cluster_id,
            endpoint__site=endpoint.site_id,
        )
        .exclude(pk=source.pk if source else None)
        .select_related("endpoint__cluster", "endpoint__site")
        .annotate(
            placed_mib=Sum("desktops__memory_mib", filter=_HOLDING, default=0),
            placed_vcpus=Sum("desktops__vcpus", filter=_HOLDING, default=0),
            placed=Count("desktops", filter=_HOLDING),
        )
        .order_by("pk")
    )
    hosts = list(hosts)
    # Desktops already on their way to a host count there (an evacuation places several at once).
    incoming = {
        row["target"]: row
        for row in DesktopMigration.objects.filter(
            state__in=(DesktopMigration.State.QUEUED, DesktopMigration.State.RUNNING), target__in=hosts
        )
        .values("target")
        .annotate(mib=Sum("desktop__memory_mib", default=0), vcpus=Sum("desktop__vcpus", default=0))
    }
    for host in hosts:
        host.placed_mib += incoming.get(host.pk, {}).get("mib", 0)
        host.placed_vcpus += incoming.get(host.pk, {}).get("vcpus", 0)
    size = SimpleNamespace(memory_mib=desktop.memory_mib, vcpus=desktop.vcpus, gpu_profile_id=None, gpus=0)
    fitting = _fitting(hosts, size)
    pack = endpoint.cluster.policy == Cluster.Policy.PACK
    fitting.sort(key=lambda item: (item[0] if pack else -item[0], item[1].pk))
    return [host for _free_mib, host, _gpu in fitting]
