"""Writes of the compute nodes (hosts): adding one by its libvirt URI, maintenance, removal, refresh, heartbeat.

A compute node is a libvirt endpoint of its own (one URI: ``qemu+tls://``, ``qemu+ssh://``, or
``qemu+tcp://`` on a test management network) with one ``Host`` row: its management address (where
libvirtd, VNC and migrations listen; one host per address), the capacity read from it (CPU, memory,
NUMA, storage pools, GPUs and mediated-device types from the node-device API), its state and its
agent's heartbeat. The host is checked before anything is saved: a refused connection saves nothing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, InvalidInput, NotFound
from common.tasks import enqueue
from compute import locks
from compute.drivers.base import DriverError, ErrorCode, HostInfo
from compute.errors import ComputeError
from compute.hypervisor import driver_forget, driver_open
from compute.models import Cluster, Desktop, Endpoint, Host, Site, StoragePool
from compute.networking.overlay import host_networks_leave, host_peers_resync
from compute.services.migration import host_evacuate
from compute.services.rules import driver_error_message, require_system_admin
from compute.services.storage import shared_storage_attach
from network.models import NetworkDeployment

if TYPE_CHECKING:
    from tenants.models import User

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# The remote transports a compute node is reached by; qemu:///system is the portal's own machine.
# libvirt's test driver with a host definition file (test:///path/host.xml) serves the scale model.
URI_RE = re.compile(r"^(qemu(\+(tls|ssh|tcp))?://[^/\s]*/system(\?\S*)?|test:///\S+)$")


def host_address(uri: str) -> str:
    """The management address a host URI names (its host part, resolved), or "" for a local URI."""
    netloc = urlsplit(uri).hostname or ""
    if not netloc:
        return ""
    try:
        return str(ipaddress.ip_address(netloc))
    except ValueError:
        pass
    try:
        return socket.gethostbyname(netloc)
    except OSError as exc:
        raise InvalidInput(
            _("无法解析主机名“%(name)s”。") % {"name": netloc}, code=ComputeError.HOST_UNREACHABLE
        ) from exc


def _check_new_host(name: str, uri: str, address: str) -> None:
    if not NAME_RE.match(name or ""):
        raise InvalidInput(
            _("主机名称只能包含小写字母、数字和横线。"),
            code=ComputeError.ENDPOINT_NAME_INVALID,
            detail={"field": "name"},
        )
    if not URI_RE.match(uri or ""):
        raise InvalidInput(
            _("主机地址应为 qemu+tls://、qemu+ssh:// 或 qemu+tcp:// 开头的 libvirt URI，以 /system 结尾。"),
            code=ComputeError.HOST_URI_INVALID,
            detail={"field": "uri"},
        )
    if Endpoint.objects.filter(name=name).exists():
        raise Conflict(_("主机名称“%(name)s”已被使用。") % {"name": name}, code=ComputeError.ENDPOINT_NAME_TAKEN)
    if address and Host.objects.filter(address=address).exists():
        holder = Host.objects.filter(address=address).values_list("name", flat=True).first()
        raise Conflict(
            _("管理地址 %(address)s 已属于主机“%(host)s”。") % {"address": address, "host": holder},
            code=ComputeError.HOST_ADDRESS_TAKEN,
            detail={"address": address, "host": holder},
        )


_READ_REFUSALS = {
    ErrorCode.AUTH: ComputeError.HOST_CREDENTIALS_REFUSED,
    ErrorCode.CERTIFICATE: ComputeError.HOST_CERTIFICATE_REFUSED,
}


def data_address_checked(value: str, *, host: Host | None = None) -> str:
    """A host's data (tunnel) address: an IPv4 address no other host has ("" clears it)."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        value = str(ipaddress.IPv4Address(value))
    except ValueError as exc:
        raise InvalidInput(
            _("数据地址须为 IPv4 地址。"), code=ComputeError.HOST_DATA_ADDRESS_INVALID, detail={"field": "data_address"}
        ) from exc
    holder = Host.objects.filter(data_address=value).exclude(pk=host.pk if host else None).first()
    if holder is not None:
        raise Conflict(
            _("数据地址 %(address)s 已属于主机“%(host)s”。") % {"address": value, "host": holder.name},
            code=ComputeError.HOST_DATA_ADDRESS_TAKEN,
            detail={"field": "data_address", "address": value, "host": holder.name},
        )
    return value


def _read_host(endpoint: Endpoint) -> HostInfo:
    """Connect and read the host's capacity, outside any transaction; refusals become InvalidInput."""
    try:
        driver = driver_open(endpoint)
        try:
            driver.check()
            return driver.host_info()
        finally:
            driver.close()
    except DriverError as exc:
        raise InvalidInput(
            driver_error_message(exc),
            code=_READ_REFUSALS.get(exc.code, ComputeError.HOST_UNREACHABLE),
            detail={"reason": exc.message},
        ) from exc


def host_capacity_fields(info: HostInfo) -> dict:
    """What a host row records of what libvirt reported."""
    return {
        "cpus": info.cpus,
        "memory_mib": info.memory_mib,
        "free_memory_mib": info.free_memory_mib,
        "hypervisor": info.hypervisor[:100],
        "numa_cells": max(1, info.numa_cells),
        "mdev_types": [dict(t) for t in info.mdev_types],
        "storage": [dict(p) for p in info.storage],
        # GPUs the node-device API found; none found keeps what the admin recorded (a vCenter, a test host).
        **({"gpu_devices": list(info.gpus)} if info.gpus else {}),
    }


def host_add(
    *,
    actor: User | None,
    name: str,
    uri: str,
    site: str,
    cluster: str,
    address: str = "",
    domain_type: str = Endpoint.DomainType.KVM,
    storage_pool: str = "default",
    shared_storage: bool = False,
    max_concurrency: int = 4,
    network_node: bool = False,
    data_address: str = "",
    migration_bandwidth_mib: int = 0,
) -> Host:
    """Add a compute node: checked (reachable, address not taken) before the endpoint and host rows are saved.

    ``cluster`` is the cluster's name at ``site`` (both made when missing); ``address`` defaults to the
    URI's host. ``shared_storage``: the desktop pool is on storage every host of the cluster mounts, so
    images there serve desktops on any of them. ``network_node``: the host holds the router networks'
    gateways of its cluster (or site), see ``host_network_node_set``. ``data_address``: the host's
    address on the data network, where the VXLAN of networks spanning hosts runs (none: its networks
    stay on the host). ``migration_bandwidth_mib``: what migrations leaving the host may use (MiB/s;
    0: no limit).
    """
    if actor is not None:
        require_system_admin(actor)
    address = address or host_address(uri)
    _check_new_host(name, uri, address)
    data_address = data_address_checked(data_address)
    if domain_type not in Endpoint.DomainType.values:
        raise InvalidInput(_("虚拟化类型只能是 qemu 或 kvm。"), code=ComputeError.ENDPOINT_DOMAIN_TYPE_INVALID)
    endpoint = Endpoint(
        name=name, kind=Endpoint.Kind.LIBVIRT, url=uri, domain_type=domain_type, max_concurrency=max_concurrency
    )
    info = _read_host(endpoint)
    with transaction.atomic():
        site_row, _created = Site.objects.get_or_create(slug=site, defaults={"name": site})
        cluster_row, _created = Cluster.objects.get_or_create(site=site_row, name=cluster)
        endpoint.site, endpoint.cluster = site_row, cluster_row
        endpoint.status, endpoint.last_checked_at = Endpoint.Status.OK, timezone.now()
        try:
            with transaction.atomic():
                endpoint.save()
                host = Host.objects.create(
                    endpoint=endpoint,
                    name=name,
                    address=address or None,
                    is_network_node=network_node,
                    data_address=data_address or None,
                    migration_bandwidth_mib=max(0, migration_bandwidth_mib),
                    probed_at=timezone.now(),  # it just answered: HA judges its silence from here
                    **host_capacity_fields(info),
                )
        except IntegrityError as exc:
            raise Conflict(
                _("主机名称或管理地址已被使用。"), code=ComputeError.HOST_ADDRESS_TAKEN, detail={"address": address}
            ) from exc
        if storage_pool:
            StoragePool.objects.create(
                endpoint=endpoint,
                name=storage_pool,
                is_default=True,
                kind=StoragePool.Kind.DISTRIBUTED if shared_storage else StoragePool.Kind.LOCAL,
                replicas=2 if shared_storage else 1,
            )
        # A host joining a cluster with shared storage mounts it too (or is not added).
        shared_storage_attach(host=host)
        event_record(
            action=Action.HOST_ADDED,
            actor=actor,
            target=host,
            detail={
                "uri": uri,
                "site": site,
                "cluster": cluster,
                "address": address,
                "cpus": info.cpus,
                "network_node": network_node,
                "data_address": data_address,
            },
        )
    return host


def _check_model_unchanged(host: Host, before: str, value: str) -> None:
    """Giving a host its first data address (or taking it away) changes what its networks are (NAT networks
    of its own, or bridges spanning hosts): refused while it holds networks, so nothing is half one, half the
    other. Changing one address for another is always allowed."""
    if bool(before) == bool(value):
        return
    held = NetworkDeployment.objects.filter(endpoint=host.endpoint.name).count()
    if held:
        raise Conflict(
            _("主机“%(name)s”上已有 %(count)s 个网络：请在主机还没有网络时设置或清除数据地址（先迁走或删除其桌面）。")
            % {"name": host.name, "count": held},
            code=ComputeError.HOST_DATA_ADDRESS_LOCKED,
            detail={"field": "data_address", "networks": held},
        )


def host_data_address_set(*, actor: User | None, name: str, data_address: str) -> Host:
    """Give the host its data (tunnel) address, change or clear it; the VXLAN devices of the networks it
    holds, and its peers' forwarding entries towards it, follow (each host's agent re-pushes them).
    Setting the first one or clearing it is refused while the host holds networks."""
    if actor is not None:
        require_system_admin(actor)
    with transaction.atomic():
        host = _host_locked(name)
        value = data_address_checked(data_address, host=host)
        before = host.data_address or ""
        if value == before:
            return host
        _check_model_unchanged(host, before, value)
        host.data_address = value or None
        try:
            with transaction.atomic():
                host.save(update_fields=["data_address", "updated_at"])
        except IntegrityError as exc:
            raise Conflict(
                _("数据地址已被使用。"), code=ComputeError.HOST_DATA_ADDRESS_TAKEN, detail={"field": "data_address"}
            ) from exc
        event_record(
            action=Action.HOST_DATA_ADDRESS_SET, actor=actor, target=host, detail={"from": before, "to": value}
        )
        host_peers_resync(host=host)
    return host


def _host_locked(name: str) -> Host:
    host = locks.host_lock_by_name(name)
    if host is None:
        raise NotFound(_("主机“%(name)s”不存在。") % {"name": name}, code=ComputeError.HOST_NOT_FOUND)
    return host


def host_maintenance(*, actor: User | None, name: str, on: bool) -> Host:
    """Maintenance on: no new desktop is placed on the host and every desktop on it moves to another host
    of its cluster (``host_evacuate``: live when running, cold when stopped; what cannot move is listed
    with the reason, ``evacuation_status``). Off: the host takes desktops again."""
    if actor is not None:
        require_system_admin(actor)
    with transaction.atomic():
        host = _host_locked(name)
        before = host.state
        host.state = Host.State.MAINTENANCE if on else Host.State.ENABLED
        if on and before != Host.State.MAINTENANCE:
            host.maintenance_since = timezone.now()
        elif not on:
            host.maintenance_since = None
        host.save(update_fields=["state", "maintenance_since", "updated_at"])
        event_record(
            action=Action.HOST_STATE_CHANGED, actor=actor, target=host, detail={"from": before, "to": host.state}
        )
    if on:
        host_evacuate(actor=actor, host=host)
    return host


def host_network_node_set(*, actor: User | None, name: str, on: bool) -> Host:
    """Make the host the network node of its cluster (else of its site), or no longer one.

    A network node holds, per router network, the gateway, SNAT, elastic IPs and port forwards in
    namespaces of its own (compute/networking/gateway.py), made by its agent. Every network node's
    agent is asked to converge (the gateways move with the flag); an agent that is down does it
    when it comes back. A network node needs a management address (its agent's host)."""
    if actor is not None:
        require_system_admin(actor)
    with transaction.atomic():
        host = _host_locked(name)
        if on and not host.address:
            raise InvalidInput(
                _("主机“%(name)s”没有管理地址，不能作为网络节点。") % {"name": name},
                code=ComputeError.HOST_URI_INVALID,
                detail={"field": "network_node"},
            )
        before = host.is_network_node
        host.is_network_node = on
        host.save(update_fields=["is_network_node", "updated_at"])
        event_record(
            action=Action.HOST_STATE_CHANGED,
            actor=actor,
            target=host,
            detail={"op": "network_node", "from": before, "to": on},
        )
        nodes = Host.objects.filter(Q(is_network_node=True) | Q(pk=host.pk), address__isnull=False)
        for node in nodes.select_related("endpoint"):
            enqueue("compute.tasks.edge.edge_sync", node.endpoint.name, queue=node.queue)
    return host


def host_remove(*, actor: User | None, name: str) -> None:
    """Remove a host with no desktops; one with desktops is refused (their desktops must move or go first)."""
    if actor is not None:
        require_system_admin(actor)
    with transaction.atomic():
        host = _host_locked(name)
        held = Desktop.objects.filter(endpoint=host.endpoint).exclude(state=Desktop.State.DELETED).count()
        if held:
            raise Conflict(
                _("主机“%(name)s”上还有 %(count)s 个桌面，请先将其置于维护状态并迁走或删除这些桌面。")
                % {"name": name, "count": held},
                code=ComputeError.HOST_HAS_DESKTOPS,
                detail={"desktops": held},
            )
        endpoint = host.endpoint
        left = host_networks_leave(host=host)
        event_record(
            action=Action.HOST_REMOVED, actor=actor, target=host, detail={"uri": endpoint.url, "networks_left": left}
        )
        # Deleted desktops keep their rows (billing, audit): the endpoint is only deactivated then.
        if Desktop.objects.filter(endpoint=endpoint).exists() or endpoint.images.exists():
            endpoint.is_active = False
            endpoint.save(update_fields=["is_active"])
            host.delete()
        else:
            endpoint.delete()
    driver_forget(endpoint.pk)


def host_refresh(*, host: Host, info: HostInfo | None, error: str = "") -> Host:
    """Record a capacity reading: the numbers when the host answered; state ``down`` and the reason when not.

    A host in maintenance stays in maintenance; a host that answers again comes back from ``down``.
    """
    with transaction.atomic():
        host = locks.host_lock(host.pk)
        if info is None:
            host.last_error = error[:2000]
            if host.state == Host.State.ENABLED:
                host.state = Host.State.DOWN
            host.save(update_fields=["last_error", "state", "updated_at"])
            return host
        for field, value in host_capacity_fields(info).items():
            setattr(host, field, value)
        host.last_error = ""
        if host.state == Host.State.DOWN:
            host.state = Host.State.ENABLED
        host.save()
    return host


def host_heartbeat(*, name: str, info: HostInfo | None = None) -> Host:
    """The host's agent is alive (and, with ``info``, what it read of its host)."""
    host = Host.objects.select_related("endpoint").filter(endpoint__name=name).first()
    if host is None:
        raise NotFound(_("主机“%(name)s”不存在。") % {"name": name}, code=ComputeError.HOST_NOT_FOUND)
    Host.objects.filter(pk=host.pk).update(heartbeat_at=timezone.now())
    if info is not None:
        host = host_refresh(host=host, info=info)
    host.refresh_from_db()
    return host
