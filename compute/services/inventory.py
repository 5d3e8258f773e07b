"""Writes of the inventory: sites, endpoints (hypervisors), clusters, hosts, storage pools and GPU profiles."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, InvalidInput
from compute import locks
from compute.drivers.base import DriverError, ErrorCode, HostInfo
from compute.errors import ComputeError
from compute.hypervisor import driver_for, driver_forget, driver_open
from compute.models import Cluster, Endpoint, GpuProfile, Host, Site, StoragePool
from compute.services.hosts import host_refresh
from compute.services.rules import driver_error_message, require_system_admin

if TYPE_CHECKING:
    from tenants.models import User

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def site_ensure(*, slug: str = "main", name: str = "") -> Site:
    site, _created = Site.objects.get_or_create(slug=slug, defaults={"name": name or slug})
    return site


def cluster_ensure(site: Site, kind: str = Cluster.Kind.GENERAL) -> Cluster:
    cluster, _created = Cluster.objects.get_or_create(site=site, name=f"{site.slug}-{kind}", defaults={"kind": kind})
    return cluster


def _host_record(endpoint: Endpoint, info: HostInfo) -> Host:
    if endpoint.kind == Endpoint.Kind.LIBVIRT:
        # A libvirt endpoint is one host: its row keeps its name (host_add's) whatever the hostname says.
        host = Host.objects.filter(endpoint=endpoint).order_by("pk").first()
        if host is not None:
            return host_refresh(host=host, info=info)
    host, _created = Host.objects.update_or_create(
        endpoint=endpoint,
        name=info.name[:255] or endpoint.name,
        defaults={
            "cpus": info.cpus,
            "memory_mib": info.memory_mib,
            "free_memory_mib": info.free_memory_mib,
            "hypervisor": info.hypervisor[:100],
        },
    )
    return host


def endpoint_register(
    *,
    actor: User,
    name: str,
    kind: str,
    url: str,
    username: str = "",
    password: str = "",
    site: Site | None = None,
    cluster_kind: str = Cluster.Kind.GENERAL,
    domain_type: str = Endpoint.DomainType.KVM,
    max_concurrency: int = 4,
    storage_pool: str = "",
    options: dict | None = None,
) -> Endpoint:
    """Register a hypervisor after checking that it answers and accepts the credentials."""
    if not NAME_RE.match(name or ""):
        raise InvalidInput(_("名称只能包含字母、数字、点、横线和下划线。"), code=ComputeError.ENDPOINT_NAME_INVALID)
    if kind not in Endpoint.Kind.values:
        raise InvalidInput(_("未知的虚拟化类型：%(kind)s") % {"kind": kind}, code=ComputeError.ENDPOINT_KIND_INVALID)
    if domain_type not in Endpoint.DomainType.values:
        raise InvalidInput(_("虚拟化类型只能是 qemu 或 kvm。"), code=ComputeError.ENDPOINT_DOMAIN_TYPE_INVALID)
    if not url:
        raise InvalidInput(_("请填写地址。"), code=ComputeError.ENDPOINT_URL_MISSING)
    if Endpoint.objects.filter(name=name).exists():
        raise Conflict(_("端点名称“%(name)s”已被使用。") % {"name": name}, code=ComputeError.ENDPOINT_NAME_TAKEN)
    endpoint = Endpoint(
        name=name,
        kind=kind,
        url=url,
        username=username,
        domain_type=domain_type,
        max_concurrency=max_concurrency,
        options=options or {},
    )
    endpoint.set_password(password)
    # Check outside the transaction: a slow hypervisor must not hold database locks.
    try:
        driver = driver_open(endpoint)
        try:
            driver.check()
            info = driver.host_info()
        finally:
            driver.close()
    except DriverError as exc:
        raise InvalidInput(
            driver_error_message(exc),
            code=ComputeError.ENDPOINT_CREDENTIALS_REFUSED
            if exc.code == ErrorCode.AUTH
            else ComputeError.ENDPOINT_UNREACHABLE,
            detail={"reason": exc.message},
        ) from exc
    with transaction.atomic():
        site = site or site_ensure()
        endpoint.site = site
        endpoint.cluster = cluster_ensure(site, cluster_kind)
        endpoint.status = Endpoint.Status.OK
        endpoint.last_checked_at = timezone.now()
        try:
            endpoint.save()
        except IntegrityError as exc:
            raise Conflict(
                _("端点名称“%(name)s”已被使用。") % {"name": name}, code=ComputeError.ENDPOINT_NAME_TAKEN
            ) from exc
        _host_record(endpoint, info)
        pool_name = storage_pool or ("default" if kind == Endpoint.Kind.LIBVIRT else "")
        if pool_name:
            StoragePool.objects.create(endpoint=endpoint, name=pool_name, is_default=True)
        event_record(
            action=Action.ENDPOINT_REGISTERED,
            actor=actor,
            target=endpoint,
            detail={"kind": kind, "url": url, "site": site.slug},
        )
    return endpoint


def endpoint_refresh(*, endpoint: Endpoint, info: HostInfo | None, error: str = "") -> Endpoint:
    """Record what a check found: capacity when reachable, the reason when not."""
    with transaction.atomic():
        endpoint = locks.endpoint_lock(endpoint.pk)
        endpoint.last_checked_at = timezone.now()
        if info is None:
            endpoint.status = Endpoint.Status.UNREACHABLE
            endpoint.last_error = error[:2000]
            for host in Host.objects.filter(endpoint=endpoint, address__isnull=False):
                host_refresh(host=host, info=None, error=error)
        else:
            endpoint.status = Endpoint.Status.OK
            endpoint.last_error = ""
            _host_record(endpoint, info)
        endpoint.save(update_fields=["status", "last_error", "last_checked_at"])
    return endpoint


def endpoint_update(
    *,
    actor: User,
    endpoint: Endpoint,
    password: str | None = None,
    max_concurrency: int | None = None,
    is_active: bool | None = None,
) -> Endpoint:
    with transaction.atomic():
        endpoint = locks.endpoint_lock(endpoint.pk)
        changed = []
        if password is not None:
            endpoint.set_password(password)
            changed.append("password")
        if max_concurrency is not None:
            if not 1 <= max_concurrency <= 64:
                raise InvalidInput(_("并发数必须在 1 到 64 之间。"), code=ComputeError.ENDPOINT_CONCURRENCY_INVALID)
            endpoint.max_concurrency = max_concurrency
            changed.append("max_concurrency")
        if is_active is not None:
            endpoint.is_active = is_active
            changed.append("is_active")
        endpoint.save()
        event_record(action=Action.ENDPOINT_CHANGED, actor=actor, target=endpoint, detail={"changed": changed})
    driver_forget(endpoint.pk)
    return endpoint


def inventory_save(
    *, actor: User, obj: Site | Cluster | StoragePool | GpuProfile, pool_path: str = ""
) -> Site | Cluster | StoragePool | GpuProfile:
    """Create or change a site, cluster, storage pool or GPU profile: checked against the model's rules
    (a distributed pool keeps 2-6 replicas, a local one 1), saved and audited in one transaction.

    A new libvirt storage pool with ``pool_path`` is also set up on the hypervisor (a directory pool).
    """
    require_system_admin(actor)
    created = obj.pk is None
    try:
        obj.full_clean()
    except ValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        message = " ".join(m for messages in detail.values() for m in messages)
        raise InvalidInput(message, code=ComputeError.INVENTORY_INVALID, detail=detail) from exc
    if isinstance(obj, StoragePool) and created and pool_path:
        if obj.endpoint.kind != Endpoint.Kind.LIBVIRT:
            raise InvalidInput(
                _("只能在 libvirt 端点上创建存储池；vCenter 的数据存储在 vCenter 中管理。"),
                code=ComputeError.POOL_CREATE_UNSUPPORTED,
            )
        try:
            driver_for(obj.endpoint).pool_ensure(obj.name, pool_path)
        except DriverError as exc:
            raise InvalidInput(
                _("无法在虚拟化平台上创建存储池。"),
                code=ComputeError.POOL_CREATE_FAILED,
                detail={"reason": exc.message},
            ) from exc
    with transaction.atomic():
        if isinstance(obj, StoragePool) and obj.is_default:
            # One default pool per endpoint: new desktops' disks go there.
            StoragePool.objects.filter(endpoint=obj.endpoint_id, is_default=True).exclude(pk=obj.pk).update(
                is_default=False
            )
        try:
            obj.save()
        except IntegrityError as exc:
            raise Conflict(_("名称已被使用。"), code=ComputeError.INVENTORY_NAME_TAKEN) from exc
        event_record(
            action=Action.INVENTORY_CHANGED,
            actor=actor,
            target=obj,
            detail={"kind": obj._meta.model_name, "created": created, "path": pool_path},
        )
    return obj
