"""Every detail route of the API, as a user of tenant `me` against an object of tenant `cs`: 404.

Routes come from the OpenAPI schema, so a new route joins this test by itself. Each app
says how to make an object of a tenant for its routes in `tests/<app>/isolation.py`:

    MAKERS = {"/api/v1/desktops/{id}/": lambda scenario: {"id": desktop_of(scenario.tenant_a).pk}}

A route without a maker fails here, so no detail route escapes the check.
"""

import importlib
import pkgutil

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

import tests
from common.errors import ErrorCode
from tests.sso.accounts import sso_account

METHODS = ("get", "put", "patch", "delete", "post")


def _detail_operations() -> list[tuple[str, str]]:
    spec = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for path, item in spec["paths"].items():
        if "{" not in path:
            continue
        for method in METHODS:
            if method in item:
                operations.append((path, method))
    return sorted(operations)


def _makers() -> dict:
    makers = {}
    for module in pkgutil.iter_modules(tests.__path__):
        if not module.ispkg:
            continue
        try:
            isolation = importlib.import_module(f"tests.{module.name}.isolation")
        except ModuleNotFoundError as exc:
            if exc.name != f"tests.{module.name}.isolation":
                raise
            continue
        makers.update(isolation.MAKERS)
    return makers


OPERATIONS = _detail_operations()
MAKERS = _makers()


def test_every_detail_route_has_an_object_maker():
    missing = sorted({path for path, _ in OPERATIONS} - set(MAKERS))
    assert not missing, f"detail routes without an isolation maker: {missing}"


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
@pytest.mark.parametrize("who", ["stranger", "stranger_admin", "sso_stranger"])
def test_another_tenants_object_is_a_404(scenario, path, method, who):
    if path not in MAKERS:
        pytest.fail(f"no isolation maker for {path}")
    if who == "sso_stranger":  # a teacher of `me` placed there by their first CAS sign-in
        scenario.sso_stranger = sso_account(tenant=scenario.tenant_b, role="teacher", number="T7001", subject="t7001")
    params = MAKERS[path](scenario)
    url = path.format(**{key: str(value) for key, value in params.items()})
    client = Client()
    client.force_login(getattr(scenario, who))

    if method in ("get", "delete"):
        response = getattr(client, method)(url)
    else:
        response = getattr(client, method)(url, data="{}", content_type="application/json")

    answer = f"{method.upper()} {url} as {who}: {response.status_code} {response.content[:300]!r}"
    assert response.status_code == 404, answer
    body = response.json()
    assert body["code"] == ErrorCode.NOT_FOUND
