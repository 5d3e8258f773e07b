"""The schemathesis walk of tests/api/test_robustness*.py (issue 19): the demo as shipped, the
objects made through the API for the second world, and one walk of every operation as one user.

Two test files, one per world, so that pytest-xdist (``--dist loadfile``) runs them side by side.
"""

import re
from dataclasses import dataclass, field

import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tenants.identity.tokens import token_issue
from tenants.models import User

MAX_EXAMPLES = 5
ROLES = {"tenant_admin": "cs_admin", "teacher": "teacher1", "student": "student1"}
LOOKUPS = {"slug": "slug"}  # a path parameter -> the listed field that gives its values (default: id)

# Loaded at collection, in-process through WSGI: generating the schema needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


class _RolledBack(Exception):
    pass


@dataclass
class World:
    """What the walk was given: the objects made through the API, by kind."""

    made: dict = field(default_factory=dict)


def keep_connection() -> None:
    # The WSGI handler closes "old" connections at each request's start and end, which would
    # close the test's transaction under it. Django's test client disconnects the same receiver
    # for its own requests but connects it again afterwards, so this runs after each use of it.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)


def populate(world: World, capture) -> World:
    """One object of each kind, each made through the API by whom may make it; the work each
    one queues (eagerly, on libvirt's test driver) is done before the next is asked for."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    clients = {}
    for username in ("cs_admin", "teacher1", "student1", "finance1"):
        clients[username] = APIClient()
        clients[username].force_authenticate(User.objects.get(username=username))

    def make(kind: str, username: str, url: str, body, fmt: str = "json") -> dict:
        with capture(execute=True):
            response = clients[username].post(url, body, format=fmt)
        assert response.status_code in (200, 201, 202), f"{kind}: {response.status_code} {response.content[:500]!r}"
        return response.json()

    admin = clients["cs_admin"]
    course = make(
        "course",
        "cs_admin",
        "/api/v1/courses/",
        {
            "tenant": "cs",
            "code": "CS202",
            "name": "操作系统",
            "teacher": "teacher1",
            "term_start": "2026-09-01",
            "term_end": "2027-01-15",
            "class_times": [{"weekday": 2, "start_time": "10:00", "end_time": "11:40"}],
        },
    )
    roster = SimpleUploadedFile("roster.csv", "学号,姓名\n20269101,学生一\n20269102,学生二\n".encode())
    make("roster", "teacher1", f"/api/v1/courses/{course['id']}/roster-import/", {"file": roster}, "multipart")
    version = admin.get("/api/v1/images/").json()["results"][0]["versions"][0]["id"]
    flavor = admin.get("/api/v1/flavors/").json()["results"][0]["id"]
    pool_request = make(
        "course request",
        "teacher1",
        "/api/v1/requests/",
        {
            "kind": "course_desktops",
            "title": "CS202 课程桌面",
            "course": course["id"],
            "payload": {"image_version": version, "flavor": flavor, "persistence": "persistent"},
            "amounts": {"vcpu": 2, "ram_mib": 2048, "disk_gib": 2, "desktops": 2},
        },
    )
    make("approval", "cs_admin", f"/api/v1/requests/{pool_request['id']}/approve/", {})
    world.made["course"] = course
    world.made["network"] = make(
        "network", "cs_admin", "/api/v1/networks/", {"name": "walk-net", "cidr": "10.20.77.0/24"}
    )
    desktop = clients["student1"].get("/api/v1/desktops/").json()["results"][0]["id"]
    world.made["volume"] = make(
        "volume", "student1", f"/api/v1/desktops/{desktop}/volumes/", {"size_gib": 1, "name": "walk"}
    )
    world.made["snapshot"] = make("snapshot", "student1", f"/api/v1/desktops/{desktop}/snapshots/", {"name": "walk"})
    world.made["price_plan"] = make(
        "price plan",
        "finance1",
        "/api/v1/price-plans/",
        {"tenant": "cs", "name": "walk", "effective_from": "2027-01-01", "rates": {"vcpu": "0.05"}},
    )
    world.made["budget"] = make(
        "budget", "finance1", "/api/v1/budgets/", {"tenant": "cs", "course": course["id"], "amount": "500"}
    )
    # A request left waiting, so approve/reject/cancel have one to act on.
    world.made["request"] = make(  # a quota increase is never auto-approved: it waits
        "open request",
        "teacher1",
        "/api/v1/requests/",
        {"kind": "quota_increase", "title": "walk", "course": course["id"], "amounts": {"vcpu": 4, "desktops": 2}},
    )
    pools = admin.get("/api/v1/pools/").json()["results"]
    world.made["pool"] = next((p for p in pools if p["course"] == course["code"]), None)
    state = admin.get(f"/api/v1/requests/{pool_request['id']}/").json()
    assert world.made["pool"], f"the approved course request made no pool: {state}"
    return world


def _listed(client, url: str, lookup: str) -> list:
    response = client.get(url)
    if response.status_code != 200:
        return []
    body = response.json()
    rows = body.get("results", body) if isinstance(body, dict) else body
    return [row[lookup] for row in rows if isinstance(row, dict) and lookup in row][:5]


def _known_parameters(client, path: str) -> list[dict]:
    """Path parameters naming objects the caller can list: the list URL is the path up to each one."""
    names = re.findall(r"{(\w+)}", path)
    if not names:
        return []
    combos = [{}]
    for name in names:
        prefix = path[: path.index("{" + name + "}")]
        lookup = LOOKUPS.get(name, "id")
        combos = [
            {**combo, name: value} for combo in combos[:3] for value in _listed(client, prefix.format(**combo), lookup)
        ]
    return combos


def _walk(operation, headers: dict, known: list[dict]) -> None:
    strategy = operation.as_strategy()
    if known:
        strategy = st.one_of(strategy, *(operation.as_strategy(path_parameters=p) for p in known))

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case):
        try:
            with transaction.atomic():
                case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])
                raise _RolledBack
        except _RolledBack:
            pass

    run()


def walk_all(role: str, where: str) -> None:
    """Every operation of the schema, as the demo user of ``role``; fails listing every operation that failed."""
    user = User.objects.get(username=ROLES[role])
    _token, key = token_issue(user=user, name="schemathesis", second_factor=True)
    headers = {"Authorization": f"Token {key}"}
    client = APIClient()
    client.force_authenticate(user)

    failures = []
    for operation in OPERATIONS:
        known = _known_parameters(client, operation.path)
        keep_connection()
        try:
            _walk(operation, headers, known)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation walked, all failures told
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}")
    assert not failures, f"{len(failures)} operations failed as {role} on {where}:\n" + "\n\n".join(failures)
