"""Placement's dry run: how many desktops of a flavor the hosts could still take, placed as
``compute.placement.place`` would place them (the flavor's cluster kind, the golden image's
endpoint, each host's capacity times its cluster's overcommit less what is placed there, free
GPU devices). The request wizard checks it beside the quotas, so a pool is not approved for
desktops no host has room for.
"""

from django.db.models import Count, Q, Sum

from compute.models import Cluster, Desktop, Flavor, Host, ImageVersion

_HOLDING = ~Q(desktops__state=Desktop.State.DELETED)


def _free_gpus(host: Host) -> int:
    used = set()
    for device in (
        Desktop.objects.filter(host=host).exclude(state=Desktop.State.DELETED).values_list("gpu_device", flat=True)
    ):
        used.update(filter(None, device.split(",")))
    return len([d for d in host.gpu_devices if d not in used])


def _room_on(host: Host, flavor: Flavor) -> int:
    cluster = host.endpoint.cluster
    free_mib = float(host.memory_mib) * float(cluster.memory_overcommit) - host.placed_mib
    free_cpu = float(host.cpus) * float(cluster.cpu_overcommit) - host.placed_vcpus
    room = min(int(free_mib // max(flavor.memory_mib, 1)), int(free_cpu // max(flavor.vcpus, 1)))
    if flavor.gpu_profile_id:
        room = min(room, _free_gpus(host) // max(flavor.gpus, 1))
    return max(0, room)


def room_for(*, flavor: Flavor, image_version: ImageVersion | None, wanted: int) -> int:
    """How many of ``wanted`` desktops of ``flavor`` the hosts have room for now (at most ``wanted``)."""
    kind = Cluster.Kind.GPU if flavor.gpu_profile_id else Cluster.Kind.GENERAL
    hosts = Host.objects.filter(is_active=True, endpoint__is_active=True, endpoint__cluster__kind=kind)
    if image_version is not None:
        hosts = hosts.filter(endpoint=image_version.endpoint_id)
    hosts = (
        hosts.select_related("endpoint__cluster")
        .annotate(
            placed_mib=Sum("desktops__memory_mib", filter=_HOLDING, default=0),
            placed_vcpus=Sum("desktops__vcpus", filter=_HOLDING, default=0),
            placed=Count("desktops", filter=_HOLDING),
        )
        .order_by("pk")
    )
    room = 0
    for host in hosts:
        room += _room_on(host, flavor)
        if room >= wanted:
            return wanted
    return room
