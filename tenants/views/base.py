"""What the tenants pages share: their page size and paging (common.paging: keys first, then rows)."""

from common.paging import Paginator
from tenants import selectors
from tenants.roles import TenantRole

PAGE_SIZE = 25


def page(request, queryset, size=PAGE_SIZE):
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def request_tenants(user) -> list:
    """The tenants where `user` may file a request (teachers, tenant admins, students)."""
    roles = (TenantRole.TEACHER, TenantRole.TENANT_ADMIN, TenantRole.STUDENT)
    tenants = [m.tenant for m in selectors.memberships_of(user) if m.role in roles]
    return list({t.pk: t for t in tenants}.values())
