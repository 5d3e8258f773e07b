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


# base.html's sidebar loop before {% nav_links %}, kept as the reference.
_BEFORE = (
    "{% for item in nav_items %}\n"
    '        <li class="nav-item"><a class="nav-link text-nowrap{% if item.active %} active{% endif %}" '
    'href="{{ item.url }}"{% if item.active %} aria-current="page"{% endif %}><i class="bi bi-{{ item.icon }} me-1" '
    'aria-hidden="true"></i>{{ item.label }}</a></li>\n'
    "        {% endfor %}"
)


@pytest.mark.parametrize("who", ["sysadmin", "auditor", "tenant_admin", "student"])
def test_the_sidebar_is_the_loops_html_in_each_language_also_from_the_cache(scenario, who):
    from django.template import Context, Template
    from django.utils import translation

    from portal.navigation import items_for
    from portal.templatetags.navigation import nav_links
    from tenants.selectors import roles_of

    user = getattr(scenario, who)
    for path in ("/", "/compute/", "/audit/"):
        for language in ("zh-hans", "en", "zh-hans", "en"):  # the second time from the cache
            with translation.override(language):
                items = items_for(roles_of(user), path)
                assert nav_links(items) == Template(_BEFORE).render(Context({"nav_items": items}))
