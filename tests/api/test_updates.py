"""Every PUT and PATCH of the API against the service it calls (issue 19).

- The body's writable fields are exactly the keywords the service takes (besides ``actor`` and
  what the URL names): a field the service does not change is refused with a 400 naming it.
- Each writable field, sent alone, with a plausible value answers 200, and with nonsense
  answers 400 naming the field (or 403/409 from the service), never a 500.

The operations come from the OpenAPI schema: a new PUT or PATCH fails here until it is listed
in ``UPDATES`` with its service.
"""

import inspect

import pytest
from drf_spectacular.generators import SchemaGenerator

from common.errors import ErrorCode
from compute.classroom.services import pool_settings_update
from compute.ha.services import desktop_ha_set, ha_settings_update
from tenants.services import course_class_times_set, course_update, quota_set, tenant_update
from tests.classroom.isolation import MAKERS as CLASSROOM_MAKERS
from tests.compute.isolation import MAKERS as COMPUTE_MAKERS
from tests.tenants.isolation import MAKERS as TENANTS_MAKERS

MAKERS = {**TENANTS_MAKERS, **CLASSROOM_MAKERS, **COMPUTE_MAKERS}

# (path, method) -> the service, the parameters the view fills from the URL's object, and, for a
# list body, the parameter its items become (with the item fields in the order of the tuple).
UPDATES = {
    ("/api/v1/tenants/{slug}/", "patch"): (tenant_update, {"tenant"}, None),
    ("/api/v1/courses/{id}/", "put"): (course_update, {"course"}, None),
    ("/api/v1/courses/{id}/", "patch"): (course_update, {"course"}, None),
    ("/api/v1/courses/{id}/class-times/", "put"): (
        course_class_times_set,
        {"course"},
        ("slots", ("weekday", "start_time", "end_time")),
    ),
    ("/api/v1/quotas/{id}/", "patch"): (quota_set, {"tenant", "course", "user"}, None),
    ("/api/v1/pools/{id}/", "patch"): (pool_settings_update, {"pool"}, None),
    ("/api/v1/ha-clusters/{id}/", "put"): (ha_settings_update, {"cluster"}, None),
    ("/api/v1/desktop-ha/{id}/", "put"): (desktop_ha_set, {"desktop"}, None),
}

# A value the tenant admin of `cs` may set on the objects of tests/*/isolation.py.
PLAUSIBLE = {
    "name": "新名称",
    "name_zh": "计算机科学学院",
    "name_en": "School of Computing",
    "is_active": True,
    "teacher": "a_teacher",
    "term_start": "2026-09-07",
    "term_end": "2027-01-10",
    "weekday": 2,
    "start_time": "08:00",
    "end_time": "09:40",
    "limits": {"vcpu": 64, "ram_mib": 256 * 1024},
    "persistence": "persistent",
    "leaver_disks": "delete",
    "lead_minutes": 20,
    "shutdown_after_minutes": 15,
    "shutdown_deadline_minutes": 60,
    "enabled": True,
    "detection_seconds": 20,
    "fencing": "ipmi",
}
# Where one field name takes other values on another path.
PLAUSIBLE_ON = {("/api/v1/desktop-ha/{id}/", "enabled"): "off"}


def _plausible(path: str, field: str):
    return PLAUSIBLE_ON.get((path, field), PLAUSIBLE[field])


SPEC = SchemaGenerator().get_schema(request=None, public=True)


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _body_schema(path: str, method: str) -> dict:
    content = SPEC["paths"][path][method]["requestBody"]["content"]
    return _resolve(content["application/json"]["schema"])


def _writable(schema: dict) -> dict:
    if schema.get("type") == "array":
        schema = _resolve(schema["items"])
    return {name: _resolve(prop) for name, prop in schema["properties"].items() if not prop.get("readOnly")}


def _operations() -> list[tuple[str, str]]:
    return sorted(
        (path, method) for path, item in SPEC["paths"].items() for method in item if method in ("put", "patch")
    )


def _field_cases() -> list[tuple[str, str, str]]:
    return [(path, method, field) for path, method in _operations() for field in _writable(_body_schema(path, method))]


def _nonsense(prop: dict) -> list:
    """Values no service should take, by the field's schema type."""
    kind, fmt = prop.get("type"), prop.get("format")
    if "enum" in prop:
        return ["nonsense", 7, None]
    if kind == "boolean":
        return ["maybe", None]
    if kind == "integer":
        return [-1, 10**12, 2**64, "many", 1.5, None]
    if kind == "object":
        values = [{name: value} for name in prop.get("properties", {}) for value in (-1, 10**12, "x")]
        return [*values, "x", [], None]
    if fmt == "date":
        return ["1999-12-31", "2101-01-01", "5934-05-17", "0001-01-01", "2026-02-30", "tomorrow", None]
    if fmt == "time":
        return ["25:00", "-01:00", "noon", None]
    return ["x" * 5000, ["a"], {"a": 1}, None]


def _url(scenario, path: str) -> str:
    return path.format(**{key: str(value) for key, value in MAKERS[path](scenario).items()})


# Who changes the objects of each path: a tenant's own quota is set from above.
ACTORS = {"/api/v1/quotas/{id}/": "sysadmin", "/api/v1/ha-clusters/{id}/": "sysadmin"}


def _actor(scenario, path: str):
    return getattr(scenario, ACTORS.get(path, "tenant_admin"))


def _call(client, url, path, method, field, value):
    body = {field: value}
    if _body_schema(path, method).get("type") == "array":
        body = [{**{name: PLAUSIBLE[name] for name in _writable(_body_schema(path, method))}, field: value}]
    return getattr(client, method)(url, body, format="json")


def _item(detail):
    """The errors of the first item of a list body ({"0": {...}}), or the body's own."""
    if isinstance(detail, list):
        return detail[0]
    return detail.get("0", detail)


def _answer(response) -> str:
    return f"{response.status_code} {response.content[:400]!r}"


def test_every_update_operation_is_listed_with_its_service():
    assert set(_operations()) == set(UPDATES), "a PUT/PATCH without its service in UPDATES (or a stale entry)"


@pytest.mark.parametrize(("path", "method"), sorted(UPDATES))
def test_writable_fields_are_the_services_keywords(path, method):
    service, from_url, list_param = UPDATES[(path, method)]
    keywords = {
        name
        for name, parameter in inspect.signature(service).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    } - {"actor"}
    writable = set(_writable(_body_schema(path, method)))
    if list_param:
        param, item_fields = list_param
        assert writable == set(item_fields)
        assert keywords - from_url == {param}
    else:
        assert writable == keywords - from_url, f"{method.upper()} {path}: body {writable}, service {keywords}"


@pytest.mark.parametrize(("path", "method", "field"), _field_cases())
def test_each_writable_field_with_a_plausible_value_is_applied(api, scenario, path, method, field):
    client = api.as_user(_actor(scenario, path))
    response = _call(client, _url(scenario, path), path, method, field, _plausible(path, field))
    assert response.status_code == 200, _answer(response)


@pytest.mark.parametrize(("path", "method", "field"), _field_cases())
def test_each_writable_field_with_nonsense_is_a_400_naming_it(api, scenario, path, method, field):
    prop = _writable(_body_schema(path, method))[field]
    client, url = api.as_user(_actor(scenario, path)), _url(scenario, path)
    for value in _nonsense(prop):
        response = _call(client, url, path, method, field, value)
        answer = f"{method.upper()} {path} {field}={value!r}: {_answer(response)}"
        assert response.status_code == 400, answer
        body = response.json()
        assert body["code"] == ErrorCode.INVALID, answer
        assert field in _item(body["detail"]), answer


def _refused_cases() -> list[tuple[str, str, str]]:
    keys = ("id", "created_at", "code", "tenant", "state", "no_such_field")
    return [
        (path, method, key)
        for (path, method), (_service, _from_url, list_param) in sorted(UPDATES.items())
        if not list_param
        for key in keys
        if key not in _writable(_body_schema(path, method))
    ]


@pytest.mark.parametrize(("path", "method", "key"), _refused_cases())
def test_a_key_the_service_does_not_take_is_a_400_naming_it(api, scenario, path, method, key):
    response = getattr(api.as_user(_actor(scenario, path)), method)(_url(scenario, path), {key: "x"}, format="json")
    assert response.status_code == 400, _answer(response)
    assert key in response.json()["detail"], _answer(response)


def test_put_course_with_its_code_is_a_400_not_a_500(api, scenario):
    """The reproduction of issue 19: PUT /api/v1/courses/{id}/ with code, name, term_start, term_end."""
    url = _url(scenario, "/api/v1/courses/{id}/")
    client = api.as_user(scenario.tenant_admin)
    body = {"code": "CS102", "name": "新课程", "term_start": "2026-09-01", "term_end": "2027-01-15"}

    response = client.put(url, body, format="json")
    assert response.status_code == 400, _answer(response)
    assert list(response.json()["detail"]) == ["code"]

    del body["code"]
    response = client.put(url, body, format="json")
    assert response.status_code == 200, _answer(response)
    assert response.json()["name"] == "新课程"
    assert response.json()["code"] == "CS101"
