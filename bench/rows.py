"""Rows for bench/api.py: a small world and, per list endpoint or page, a way to add N rows in bulk.

An app that adds a main list endpoint adds an `Endpoint(path, user, grow)` here (``session=True`` for
an HTML page, which is asked for with a session cookie instead of a token). Everything is written
with ``bulk_create`` in batches: 100,000 desktops take seconds, not minutes.
"""

from collections.abc import Callable
from dataclasses import dataclass

from bench import rows_campus
from compute.models import Cluster, Desktop, Flavor, Site
from compute.models import Endpoint as HypervisorEndpoint
from tenants.models import Membership, Tenant, User
from tenants.roles import TenantRole

BATCH = 5000


@dataclass
class Endpoint:
    path: str
    user: Callable[[dict], User]
    grow: Callable[[dict, int], None]
    session: bool = False  # an HTML page: a session cookie, not a token
    full: bool = False  # grown (or measured) at the full size too: the campus's big tables

    def url(self, world: dict) -> str:
        """The path with the world's ids filled in (``{pool}``: the first pool of 60 seats)."""
        return self.path.format(**world.get("ids", {}))


def make_world(university: str = "uni", department: str = "cs") -> dict:
    """Tenants (slugs ``university``, ``department``), an admin, an auditor, a student, a host, a flavor."""
    path = f"/{university}/"
    top = Tenant.objects.create(slug=university, name_zh="示范大学", kind=Tenant.Kind.UNIVERSITY, path=path)
    tenant = Tenant.objects.create(slug=department, name_zh="计算机学院", parent=top, path=f"{path}{department}/")
    admin = User.objects.create(username="bench_admin", display_name="基准管理员")
    Membership.objects.create(user=admin, tenant=tenant, role=TenantRole.TENANT_ADMIN)
    auditor = User.objects.create(username="bench_auditor", display_name="基准审计")
    Membership.objects.create(user=auditor, tenant=tenant, role=TenantRole.AUDITOR)
    student = User.objects.create(username="bench_student", display_name="基准学生")
    Membership.objects.create(user=student, tenant=tenant, role=TenantRole.STUDENT)
    site = Site.objects.create(slug="main", name="主校区")
    cluster = Cluster.objects.create(site=site, name="general")
    endpoint = HypervisorEndpoint.objects.create(
        name="bench", site=site, cluster=cluster, kind=HypervisorEndpoint.Kind.LIBVIRT, url="test:///default"
    )
    flavor = Flavor.objects.create(name="bench.small", vcpus=2, memory_mib=4096, disk_gib=40)
    return {
        "tenant": tenant,
        "admin": admin,
        "student": student,
        "auditor": auditor,
        "endpoint": endpoint,
        "flavor": flavor,
        "counter": 0,
    }


def token_for(user: User) -> str:
    from tenants.identity.tokens import token_issue

    _token, key = token_issue(user=user, name="bench", second_factor=True)
    return key


def grow_desktops(world: dict, count: int) -> None:
    start = world["counter"]
    world["counter"] += count
    Desktop.objects.bulk_create(
        [
            Desktop(
                name=f"desktop-{n}",
                vm_name=f"bench-{n}",
                tenant=world["tenant"],
                owner=world["student"],
                flavor=world["flavor"],
                endpoint=world["endpoint"],
                vcpus=2,
                memory_mib=4096,
                disk_gib=40,
                state=Desktop.State.RUNNING if n % 3 else Desktop.State.STOPPED,
            )
            for n in range(start, start + count)
        ],
        batch_size=BATCH,
    )


def grow_audit_events(world: dict, count: int) -> None:
    from django.utils import timezone

    from audit.actions import Action
    from audit.chain import append_many
    from audit.models import AuditEvent

    now = timezone.now()
    append_many(
        [
            AuditEvent(
                occurred_at=now,
                actor_id=world["student"].pk,
                actor_username="bench_student",
                actor_role="student",
                tenant_slug="cs",
                source_ip="10.0.0.1",
                action=Action.LOGIN_SUCCEEDED,
                object_type="tenants.user",
                object_id=str(world["student"].pk),
                object_name="bench_student",
            )
            for _ in range(count)
        ]
    )


def grow_requests(world: dict, count: int) -> None:
    from tenants.models import ApprovalRequest, RequestKind

    ApprovalRequest.objects.bulk_create(
        [
            ApprovalRequest(
                tenant=world["tenant"],
                requester=world["admin"],
                kind=RequestKind.values[n % len(RequestKind.values)],
                title=f"申请 {n}",
                payload={"seats": 30},
                state=ApprovalRequest.State.PENDING if n % 4 else ApprovalRequest.State.APPROVED,
            )
            for n in range(count)
        ],
        batch_size=BATCH,
    )


def grow_volumes(world: dict, count: int) -> None:
    from compute.models import Volume

    start = world["counter"]
    world["counter"] += count
    Volume.objects.bulk_create(
        [
            Volume(
                tenant=world["tenant"],
                owner=world["student"],
                endpoint=world["endpoint"],
                name=f"data-{n}",
                size_gib=10,
                pool="default",
                volume_name=f"bench-data-{n}.qcow2",
                state=Volume.State.DETACHED,
            )
            for n in range(start, start + count)
        ],
        batch_size=BATCH,
    )


def _none(world: dict, count: int) -> None:
    """A page or sub-collection measured on the rows the collections before it grew."""


def _admin(world: dict) -> User:
    return world["admin"]


def _auditor(world: dict) -> User:
    return world["auditor"]


ENDPOINTS = [
    Endpoint("/api/v1/desktops/", _admin, grow_desktops, full=True),
    Endpoint("/api/v1/audit-events/", _auditor, grow_audit_events, full=True),
    Endpoint("/api/v1/requests/", _admin, grow_requests),
    Endpoint("/api/v1/volumes/", _admin, grow_volumes),
    Endpoint("/api/v1/pools/", _admin, rows_campus.grow_seats),
    Endpoint("/api/v1/pools/{pool}/seats/", _admin, _none),
    Endpoint("/api/v1/networks/", _admin, rows_campus.grow_networks),
    Endpoint("/api/v1/usage/", _admin, rows_campus.grow_usage),
    Endpoint("/api/v1/invoices/", _admin, rows_campus.grow_invoices),
    # The HTML list pages, on the rows above.
    Endpoint("/compute/", _admin, _none, session=True, full=True),
    Endpoint("/classroom/pools/{pool}/", _admin, _none, session=True),
    Endpoint("/tenants/requests/", _admin, _none, session=True),
    Endpoint("/audit/", _auditor, _none, session=True, full=True),
    Endpoint("/billing/usage/", _admin, _none, session=True),
]
