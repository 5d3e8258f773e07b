"""Demo data of the classroom: course CS101 taught by teacher1 with student1…student30 on its roster,
weekly class times, and its desktop pool with one desktop per student on the default hypervisor.

Idempotent. The pool is made through the real services (the desktops' provisioning is queued
to Celery: ``make run``'s worker builds them), so every demo student has a desktop at first
login; outside CS101's class times (Monday and Wednesday) they are made stopped, and the
schedule powers them on before class, as for any pool. It needs compute's demo (an endpoint
for ``DEFAULT_HYPERVISOR_URI`` with a ready image version and a flavor); without it the pool
is skipped, and said so.
"""

import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compute.classroom import services
from compute.classroom.models import DesktopPool
from compute.models import Endpoint, Flavor, ImageVersion
from tenants import services as tenant_services
from tenants.models import Course, RosterEntry, Tenant, User

COURSE_CODE = "CS101"
CLASS_TIMES = [(1, datetime.time(8, 0), datetime.time(9, 40)), (3, datetime.time(14, 0), datetime.time(15, 40))]


def _course() -> Course | None:
    tenant = Tenant.objects.filter(slug="cs").first()
    teacher = User.objects.filter(username="teacher1").first()
    if tenant is None or teacher is None:
        return None
    course = Course.objects.filter(tenant=tenant, code=COURSE_CODE).first()
    if course is None:
        today = timezone.localdate()
        course = tenant_services.course_create(
            actor=None,
            tenant=tenant,
            code=COURSE_CODE,
            name="计算机导论",
            teacher=teacher,
            term_start=today - datetime.timedelta(days=30),
            term_end=today + datetime.timedelta(days=120),
            class_times=CLASS_TIMES,
        )
    if not RosterEntry.objects.filter(course=course).exists():
        students = User.objects.filter(username__in=[f"student{n}" for n in range(1, 31)])
        rows = [(i, s.student_number or s.username, s.display_name) for i, s in enumerate(students, start=1)]
        if rows:
            tenant_services.course_roster_import(actor=None, course=course, rows=rows)
    return course


def _compute_parts():
    endpoint = Endpoint.objects.filter(url=settings.DEFAULT_HYPERVISOR_URI, is_active=True).order_by("pk").first()
    if endpoint is None:
        return None, None, None
    version = (
        ImageVersion.objects.filter(endpoint=endpoint, status=ImageVersion.Status.READY, image__visibility="platform")
        .order_by("pk")
        .first()
    )
    flavor = (
        Flavor.objects.filter(is_active=True, gpu_profile__isnull=True, tenant__isnull=True)
        .order_by("vcpus", "memory_mib", "pk")
        .first()
    )
    return endpoint, version, flavor


def _room_for(endpoint: Endpoint, flavor: Flavor, *, seats: int) -> None:
    """Let the demo's cluster overcommit enough for one idle desktop per student.

    The demo's desktops boot no OS (a blank golden image), so a 2-core machine, or libvirt's
    test driver with its fixed 3 GiB host, carries 30 of them; placement would otherwise
    refuse the class with the default 4x CPU and 1x memory ratios.
    """
    host = endpoint.hosts.order_by("pk").first()
    if host is None or not host.cpus or not host.memory_mib:
        return
    cluster = endpoint.cluster
    cpu = Decimal(-(-flavor.vcpus * seats * 2 // host.cpus))
    memory = Decimal(-(-flavor.memory_mib * seats * 2 // host.memory_mib))
    if cpu > cluster.cpu_overcommit or memory > cluster.memory_overcommit:
        cluster.cpu_overcommit = max(cluster.cpu_overcommit, min(cpu, Decimal("999")))
        cluster.memory_overcommit = max(cluster.memory_overcommit, min(memory, Decimal("999")))
        cluster.save(update_fields=["cpu_overcommit", "memory_overcommit"])


def seed() -> dict:
    with transaction.atomic():
        course = _course()
    if course is None:
        return {"course": 0, "pool": "skipped: no demo tenant"}
    pool = DesktopPool.objects.filter(course=course, state=DesktopPool.State.ACTIVE).first()
    if pool is None:
        endpoint, version, flavor = _compute_parts()
        if version is None or flavor is None:
            return {"course": course.pk, "pool": "skipped: no image on the default hypervisor"}
        _room_for(endpoint, flavor, seats=RosterEntry.objects.filter(course=course).count())
        pool = services.pool_create(
            actor=None,
            course=course,
            image_version=version,
            flavor=flavor,
            persistence=DesktopPool.Persistence.PERSISTENT,
            endpoint=endpoint,
        )
    else:
        # A seeding cut short (MariaDB's deadlock victim beside a live worker, a Ctrl-C) is taken up
        # again: the seats still without a desktop get theirs.
        services.pool_seats_provision(actor=None, pool=pool)
    return {"course": course.pk, "pool": pool.pk, "seats": pool.seats.count()}
