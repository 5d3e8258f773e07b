"""The sidebar lights exactly one entry: the one whose pages the viewer is on."""

import re

import pytest

from audit.testing import force_login_verified

pytestmark = pytest.mark.django_db

ACTIVE = re.compile(r'<a class="nav-link text-nowrap active" href="([^"]+)" aria-current="page">')


def _active(client, user, path) -> list[str]:
    force_login_verified(client, user)
    response = client.get(path)
    assert response.status_code == 200, path
    return ACTIVE.findall(response.content.decode())


@pytest.mark.parametrize(
    ("who", "path", "entry"),
    [
        ("sysadmin", "/compute/admin/endpoints/", "/compute/admin/endpoints/"),
        ("sysadmin", "/compute/admin/images/", "/compute/admin/endpoints/"),
        ("sysadmin", "/compute/admin/flavors/", "/compute/admin/endpoints/"),
        ("sysadmin", "/compute/", "/compute/"),
        ("sysadmin", "/", "/"),
        ("auditor", "/audit/reports/", "/audit/reports/"),
        ("auditor", "/audit/", "/audit/"),
        ("auditor", "/audit/chain/", "/audit/"),
        ("auditor", "/audit/account/", "/audit/account/"),
        ("finance", "/billing/price-plans/", "/billing/usage/"),
        ("tenant_admin", "/tenants/courses/", "/tenants/tree/"),
        ("tenant_admin", "/tenants/requests/", "/tenants/requests/"),
    ],
)
def test_exactly_one_sidebar_entry_is_lit_and_it_is_the_right_one(client, scenario, who, path, entry):
    assert _active(client, getattr(scenario, who), path) == [entry]
