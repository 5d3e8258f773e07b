"""Reads of the compute app, scoped to the acting user; each fails closed (nothing when unsure)."""

from django.db.models import Q, QuerySet

from compute.models import Desktop, Endpoint, Flavor, Image, ImageVersion, Site, Snapshot, Visibility, Volume
from network.selectors import nics_for_desktops
from tenants import permissions as tenant_permissions
from tenants.models import Course, Tenant
from tenants.roles import PlatformRole, TenantRole
from tenants.selectors import memberships_of, platform_role_of, taught_course_q, tenants_with_role

PLATFORM_READERS = (PlatformRole.SYSTEM_ADMIN, PlatformRole.AUDIT_ADMIN)
# Tenant roles that see every desktop of their tenants (and subtrees).
TENANT_WIDE = (TenantRole.TENANT_ADMIN, TenantRole.AUDITOR, TenantRole.FINANCE)


def is_system_admin(user) -> bool:
    return platform_role_of(user) == PlatformRole.SYSTEM_ADMIN


def _member_ancestor_paths(user) -> set[str]:
    """The paths of the user's tenants and of every tenant above them."""
    return {path for m in memberships_of(user) for path in m.tenant.ancestor_paths()}


def desktop_list_for(user, *, state: str = "", search: str = "", include_deleted: bool = False) -> QuerySet[Desktop]:
    """Desktops the user may see: all for the system/audit admin; tenant-wide roles their subtrees;
    teachers their courses' desktops and their own; everyone else only their own."""
    if not getattr(user, "is_authenticated", False):
        return Desktop.objects.none()
    queryset = Desktop.objects.select_related("tenant", "owner", "course", "flavor", "image_version__image", "endpoint")
    if platform_role_of(user) not in PLATFORM_READERS:
        condition = Q(owner=user)
        wide = tenants_with_role(user, *TENANT_WIDE)
        condition |= Q(tenant__in=wide)
        if any(m.role == TenantRole.TEACHER for m in memberships_of(user)):
            condition |= taught_course_q(user, prefix="course__")
        if platform_role_of(user) == PlatformRole.SECURITY_ADMIN:
            return Desktop.objects.none()
        queryset = queryset.filter(condition)
    if not include_deleted:
        queryset = queryset.exclude(state=Desktop.State.DELETED)
    if state:
        queryset = queryset.filter(state=state)
    if search:
        queryset = queryset.filter(
            Q(name__icontains=search) | Q(vm_name__icontains=search) | Q(owner__username__icontains=search)
        )
    return queryset


def desktop_get_for(user, *, pk) -> Desktop:
    return desktop_list_for(user, include_deleted=True).get(pk=pk)


def desktop_manageable_by(user, desktop: Desktop) -> bool:
    """Whether the user may act on the desktop (not just see it): auditors and finance only look."""
    if platform_role_of(user) == PlatformRole.SYSTEM_ADMIN:
        return True
    if desktop.owner_id == user.pk and memberships_of(user):
        return True
    if desktop.course_id and tenant_permissions.teaches(user, desktop.course):
        return True
    return tenants_with_role(user, TenantRole.TENANT_ADMIN).filter(pk=desktop.tenant_id).exists()


def tenant_creatable_for(user, tenant: Tenant) -> bool:
    """Whether the user may create desktops in this tenant (for themselves or, as admin, others)."""
    if platform_role_of(user) == PlatformRole.SYSTEM_ADMIN:
        return True
    roles = (TenantRole.TENANT_ADMIN, TenantRole.TEACHER, TenantRole.STUDENT)
    return any(m.tenant_id == tenant.pk and m.role in roles for m in memberships_of(user)) or (
        tenants_with_role(user, TenantRole.TENANT_ADMIN).filter(pk=tenant.pk).exists()
    )


def image_list_for(user) -> QuerySet[Image]:
    """Platform images for everyone; tenant images for members of the tenant (and subtrees);
    course images for the course's teacher and students."""
    queryset = Image.objects.filter(is_active=True).prefetch_related("versions")
    if not getattr(user, "is_authenticated", False):
        return Image.objects.none()
    if platform_role_of(user) is not None:
        return Image.objects.all().prefetch_related("versions") if is_system_admin(user) else queryset
    paths = _member_ancestor_paths(user)
    courses = Course.objects.filter(taught_course_q(user) | Q(students=user)).values("pk")
    return queryset.filter(
        Q(visibility=Visibility.PLATFORM)
        | Q(visibility=Visibility.TENANT, tenant__path__in=paths)
        | Q(visibility=Visibility.COURSE, course__in=courses)
    ).distinct()


def image_visible_to_tenant(image: Image, *, tenant: Tenant, course: Course | None) -> bool:
    if not image.is_active:
        return False
    if image.visibility == Visibility.PLATFORM:
        return True
    if image.visibility == Visibility.TENANT:
        return tenant.path.startswith(image.tenant.path)
    return course is not None and image.course_id == course.pk


def image_version_list_for(user) -> QuerySet[ImageVersion]:
    return ImageVersion.objects.filter(image__in=image_list_for(user)).select_related("image", "endpoint")


def flavor_list_for(user) -> QuerySet[Flavor]:
    if not getattr(user, "is_authenticated", False):
        return Flavor.objects.none()
    queryset = Flavor.objects.select_related("gpu_profile", "tenant")
    if is_system_admin(user):
        return queryset
    paths = _member_ancestor_paths(user)
    return queryset.filter(Q(tenant__isnull=True) | Q(tenant__path__in=paths), is_active=True)


def flavor_usable_by_tenant(flavor: Flavor, *, tenant: Tenant) -> bool:
    return flavor.is_active and (flavor.tenant_id is None or tenant.path.startswith(flavor.tenant.path))


def endpoint_list_for(user) -> QuerySet[Endpoint]:
    if platform_role_of(user) not in PLATFORM_READERS:
        return Endpoint.objects.none()
    return Endpoint.objects.select_related("site", "cluster")


def site_list_for(user) -> QuerySet[Site]:
    if platform_role_of(user) not in PLATFORM_READERS:
        return Site.objects.none()
    return Site.objects.all()


def snapshot_list_for(user, *, desktop: Desktop) -> QuerySet[Snapshot]:
    # The desktop came from desktop_get_for: seeing it means seeing its snapshots.
    return desktop.snapshots.exclude(state=Snapshot.State.DELETED)


def desktop_nics(desktop_ids) -> dict[int, list[dict]]:
    """The NICs (MAC, IP, network) of desktops already scoped by the caller: one query for all of them."""
    return nics_for_desktops(desktop_ids)


def volume_list_for(user, *, desktop: Desktop) -> QuerySet[Volume]:
    """The data disks on a desktop the user already sees."""
    return desktop.volumes.exclude(state__in=(Volume.State.DETACHED, Volume.State.DELETED))


def volume_all_for(user) -> QuerySet[Volume]:
    """Every data disk the user may see: on the desktops they see, their own, their tenants' (tenant-wide roles)."""
    if not getattr(user, "is_authenticated", False):
        return Volume.objects.none()
    queryset = Volume.objects.exclude(state=Volume.State.DELETED).select_related("desktop", "tenant", "endpoint")
    role = platform_role_of(user)
    if role in PLATFORM_READERS:
        return queryset
    if role == PlatformRole.SECURITY_ADMIN:
        return Volume.objects.none()
    return queryset.filter(
        Q(owner=user, tenant__in=[m.tenant_id for m in memberships_of(user)])
        | Q(tenant__in=tenants_with_role(user, *TENANT_WIDE))
        | Q(desktop__in=desktop_list_for(user).values("pk"))
    )


def volume_available_for(user, *, desktop: Desktop) -> QuerySet[Volume]:
    """Detached data disks the user may attach to ``desktop``: same tenant and endpoint, manageable by them."""
    queryset = Volume.objects.filter(
        state=Volume.State.DETACHED, desktop__isnull=True, tenant=desktop.tenant_id, endpoint=desktop.endpoint_id
    )
    if is_system_admin(user):
        return queryset
    admin = tenants_with_role(user, TenantRole.TENANT_ADMIN).filter(pk=desktop.tenant_id).exists()
    return queryset if admin else queryset.filter(owner=user)


def volume_manageable_by(user, volume: Volume) -> bool:
    """Whether the user may attach, detach or delete the disk: its owner (still a member), the tenant admin."""
    if is_system_admin(user):
        return True
    if volume.owner_id == user.pk and any(m.tenant_id == volume.tenant_id for m in memberships_of(user)):
        return True
    return tenants_with_role(user, TenantRole.TENANT_ADMIN).filter(pk=volume.tenant_id).exists()


# --- compute nodes (hosts) ------------------------------------------------------------------------


def _percent(used: float, total: float) -> int:
    return min(100, round(100 * used / total)) if total else 0


def host_list_by_site(user) -> list[tuple[Site, list]]:
    """Every host per site with what is placed on it (desktops, memory, vCPUs) and its load in percent;
    the system admin only."""
    from django.db.models import Count, Sum

    from compute.models import Host

    if not is_system_admin(user):
        return []
    holding = ~Q(desktops__state=Desktop.State.DELETED)
    hosts = (
        Host.objects.select_related("endpoint__site", "endpoint__cluster")
        .annotate(
            placed_mib=Sum("desktops__memory_mib", filter=holding, default=0),
            placed_vcpus=Sum("desktops__vcpus", filter=holding, default=0),
            placed=Count("desktops", filter=holding),
        )
        .order_by("endpoint__site__slug", "endpoint__cluster__name", "name")
    )
    by_site: dict[int, tuple[Site, list]] = {}
    for host in hosts:
        cluster = host.endpoint.cluster
        host.memory_percent = _percent(host.placed_mib, host.memory_mib * float(cluster.memory_overcommit))
        host.cpu_percent = _percent(host.placed_vcpus, host.cpus * float(cluster.cpu_overcommit))
        by_site.setdefault(host.endpoint.site_id, (host.endpoint.site, []))[1].append(host)
    return list(by_site.values())


def host_get_for(user, *, pk):
    """A host and the desktops on it (system admin only; anyone else: DoesNotExist)."""
    from compute.models import Host

    hosts = Host.objects.select_related("endpoint__site", "endpoint__cluster")
    if not is_system_admin(user):
        hosts = hosts.none()
    return hosts.get(pk=pk)


def host_desktops(host) -> QuerySet[Desktop]:
    return (
        Desktop.objects.filter(Q(host=host) | Q(host__isnull=True, endpoint=host.endpoint_id))
        .exclude(state=Desktop.State.DELETED)
        .select_related("tenant", "owner", "course", "flavor")
        .order_by("tenant__slug", "name")
    )


# --- migration (system admin) ----------------------------------------------------------------------


def migrations_for(user):
    """Every desktop migration for the system admin; nothing for anyone else."""
    from compute.models import DesktopMigration

    rows = DesktopMigration.objects.select_related("desktop", "source", "target")
    return rows if is_system_admin(user) else rows.none()


def desktop_migrations(desktop, *, limit: int = 10) -> list:
    """The desktop's latest migrations, newest first (its migrate page)."""
    return list(desktop.migrations.select_related("requested_by").order_by("-created_at", "-id")[:limit])


def host_events(host, *, limit: int = 40) -> list[dict]:
    """The host's timeline, newest first: its audit events (added, state changes, evacuations) and the
    migrations that left or reached it, as ``{"at", "what", "detail", "ok"}``."""
    from audit.models import AuditEvent
    from compute.models import DesktopMigration

    events = [
        {
            "at": e.occurred_at,
            "what": e.action_label,
            "detail": e.actor_username or "",
            "ok": e.result == "success",
        }
        for e in AuditEvent.objects.filter(object_type="compute.host", object_id=str(host.pk)).order_by("-occurred_at")[
            :limit
        ]
    ]
    moves = (
        DesktopMigration.objects.filter(Q(source=host) | Q(target=host))
        .select_related("desktop")
        .order_by("-created_at")[:limit]
    )
    for m in moves:
        events.append(
            {
                "at": m.finished_at or m.started_at or m.created_at,
                "what": f"{m.get_kind_display()} · {m.get_state_display()}",
                "detail": f"{m.desktop.name}: {m.source_name} → {m.target_name or '—'}"
                + (f" ({m.error})" if m.error else ""),
                "ok": m.state != DesktopMigration.State.FAILED,
            }
        )
    events.sort(key=lambda e: e["at"], reverse=True)
    return events[:limit]
