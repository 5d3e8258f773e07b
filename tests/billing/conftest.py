"""Fixtures of the billing tests: desktop rows to meter, a course, and price plans."""

import uuid
from datetime import date
from decimal import Decimal

import pytest

from billing import services
from compute.models import Cluster, Desktop, Endpoint, Site
from tenants.models import Course


def endpoint_row() -> Endpoint:
    site, _ = Site.objects.get_or_create(slug="bill", defaults={"name": "bill"})
    cluster, _ = Cluster.objects.get_or_create(site=site, name="bill-general")
    endpoint, _ = Endpoint.objects.get_or_create(
        name="bill", defaults={"site": site, "cluster": cluster, "kind": "libvirt", "url": "test:///default"}
    )
    return endpoint


def desktop_row(tenant, *, owner=None, course=None, state="provisioning", power="unknown", **sizes) -> Desktop:
    """A desktop row without a VM, in whatever state the test puts it (the metering reads rows)."""
    values = {"vcpus": 2, "memory_mib": 4096, "disk_gib": 40, "gpus": 0, **sizes}
    return Desktop.objects.create(
        name=f"desk-{uuid.uuid4().hex[:6]}",
        vm_name=f"cc-{uuid.uuid4().hex[:10]}",
        tenant=tenant,
        owner=owner,
        course=course,
        endpoint=endpoint_row(),
        state=state,
        power_state=power,
        quota_reservation="r",
        **values,
    )


def course_of(tenant, teacher, *, code="CS101", term=(date(2026, 9, 1), date(2027, 1, 20))) -> Course:
    return Course.objects.create(
        tenant=tenant, code=code, name="操作系统", teacher=teacher, term_start=term[0], term_end=term[1]
    )


def plan(actor, tenant, day, discount=0, **rates):
    return services.price_plan_create(
        actor=actor,
        tenant=tenant,
        name=f"plan {day}",
        effective_from=day,
        rates={k: Decimal(str(v)) for k, v in rates.items()},
        discount_percent=discount,
    )


@pytest.fixture
def course(scenario):
    return course_of(scenario.tenant_a, scenario.teacher)
