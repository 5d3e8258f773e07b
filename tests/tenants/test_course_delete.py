"""Deleting a course that desktops still point at is refused with a 409, not a 500."""

import pytest

from common.errors import Conflict
from compute.models import Cluster, Desktop, Endpoint, Site
from tenants.errors import TenantsError
from tenants.models import Course
from tenants.services import course_delete

pytestmark = pytest.mark.django_db


def test_a_course_with_a_desktop_cannot_be_deleted(scenario):
    import datetime

    course = Course.objects.create(
        tenant=scenario.tenant_a,
        code="OS201",
        name="操作系统",
        teacher=scenario.teacher,
        term_start=datetime.date(2026, 9, 1),
        term_end=datetime.date(2027, 1, 15),
    )
    site = Site.objects.create(slug="main", name="主校区")
    endpoint = Endpoint.objects.create(
        name="kvm",
        site=site,
        cluster=Cluster.objects.create(site=site, name="general"),
        kind="libvirt",
        url="test:///default",
    )
    Desktop.objects.create(name="d", vm_name="d", tenant=scenario.tenant_a, course=course, endpoint=endpoint)

    with pytest.raises(Conflict) as refused:
        course_delete(actor=scenario.tenant_admin, course=course)

    assert refused.value.code == TenantsError.COURSE_IN_USE
    assert Course.objects.filter(pk=course.pk).exists()
