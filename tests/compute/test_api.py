"""The compute API: isolation, roles, query counts, error codes (tasks run in-process on the test driver)."""

import pytest

from common.errors import ErrorCode
from compute.errors import ComputeError
from compute.models import Desktop, Flavor
from tenants.errors import TenantsError
from tests.compute.conftest import desktop_of
from tests.querycount import assert_constant_queries


def _fresh(api, user):
    """A client for a fresh copy of the user: the per-request role caches start empty each time."""
    from tenants.models import User

    return api.as_user(User.objects.get(pk=user.pk))


def test_desktop_list_costs_the_same_queries_for_3_or_30_rows(scenario, compute_env, api):
    def grow(n):
        for _ in range(n):
            desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)

    assert_constant_queries(lambda: _fresh(api, scenario.tenant_admin).get("/api/v1/desktops/"), grow)


def _nic_for(scenario, desktop, network):
    from network import services as network_services

    return network_services.address_allocate(tenant=desktop.tenant, desktop_id=desktop.pk, network=network)


def test_desktop_list_shows_each_desktops_nics_at_a_constant_query_count(scenario, compute_env, api):
    from network import services as network_services

    network = network_services.network_create(
        actor=scenario.sysadmin, tenant=scenario.tenant_a, name="lab", cidr="10.231.7.0/24"
    )

    def grow(n):
        for _ in range(n):
            _nic_for(scenario, desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student), network)

    assert_constant_queries(lambda: _fresh(api, scenario.tenant_admin).get("/api/v1/desktops/"), grow)
    rows = api.as_user(scenario.tenant_admin).get("/api/v1/desktops/").json()["results"]
    assert rows and all(len(row["nics"]) == 1 for row in rows)
    assert {row["nics"][0]["network"] for row in rows} == {"lab"}
    assert len({row["nics"][0]["mac"] for row in rows}) == len(rows)


def test_desktop_detail_shows_its_nics_and_nothing_of_another_desktop(scenario, compute_env, api):
    from network import services as network_services

    network = network_services.network_create(
        actor=scenario.sysadmin, tenant=scenario.tenant_a, name="lab", cidr="10.231.8.0/24"
    )
    mine = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    bare = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    nic = _nic_for(scenario, mine, network)

    body = api.as_user(scenario.student).get(f"/api/v1/desktops/{mine.pk}/").json()
    assert [(n["mac"], n["ip"], n["network"], n["cidr"]) for n in body["nics"]] == [
        (nic.mac, nic.ip, "lab", "10.231.8.0/24")
    ]
    assert api.as_user(scenario.student).get(f"/api/v1/desktops/{bare.pk}/").json()["nics"] == []


def test_image_and_flavor_lists_cost_constant_queries(scenario, compute_env, api):
    from compute.models import Image

    def grow_images(n):
        for i in range(n):
            Image.objects.create(name=f"img-{Image.objects.count()}-{i}")

    def grow_flavors(n):
        for i in range(n):
            Flavor.objects.create(name=f"f-{Flavor.objects.count()}-{i}", vcpus=1, memory_mib=128, disk_gib=1)

    assert_constant_queries(lambda: _fresh(api, scenario.student).get("/api/v1/images/"), grow_images)
    assert_constant_queries(lambda: _fresh(api, scenario.student).get("/api/v1/flavors/"), grow_flavors)


def test_students_see_only_their_own_desktops_and_teachers_their_courses(scenario, compute_env, api):
    from tests import factories

    course = factories.cs101(scenario, name="导论")
    mine = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student, course=course)
    theirs = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student2)
    other_tenant = desktop_of(scenario.tenant_b, env=compute_env, owner=scenario.stranger)

    def ids(user):
        return {row["id"] for row in api.as_user(user).get("/api/v1/desktops/").json()["results"]}

    assert ids(scenario.student) == {mine.pk}
    assert ids(scenario.student2) == {theirs.pk}
    assert ids(scenario.teacher) == {mine.pk}
    assert ids(scenario.tenant_admin) == {mine.pk, theirs.pk}
    assert ids(scenario.auditor) == {mine.pk, theirs.pk}
    assert ids(scenario.stranger) == {other_tenant.pk}
    assert ids(scenario.sysadmin) == {mine.pk, theirs.pk, other_tenant.pk}
    assert ids(scenario.secadmin) == set()
    assert api.as_user(scenario.student).get(f"/api/v1/desktops/{theirs.pk}/").status_code == 404
    assert api.as_user(scenario.stranger).post(f"/api/v1/desktops/{mine.pk}/stop/").status_code == 404


def test_desktop_list_filters_and_searches(scenario, compute_env, api):
    running = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)
    stopped = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student2, state=Desktop.State.STOPPED)
    client = api.as_user(scenario.tenant_admin)

    assert [r["id"] for r in client.get("/api/v1/desktops/?state=stopped").json()["results"]] == [stopped.pk]
    assert [r["id"] for r in client.get("/api/v1/desktops/?owner=a_student").json()["results"]] == [running.pk]
    assert [r["id"] for r in client.get(f"/api/v1/desktops/?search={running.name}").json()["results"]] == [running.pk]


def test_an_illegal_action_is_a_409_with_a_code(scenario, compute_env, api):
    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student, state=Desktop.State.STOPPED)

    response = api.as_user(scenario.student).post(f"/api/v1/desktops/{desktop.pk}/stop/")

    assert response.status_code == 409
    assert response.json()["code"] == ComputeError.DESKTOP_INVALID_TRANSITION
    assert response.json()["message"]


def test_an_auditor_cannot_act_on_a_desktop(scenario, compute_env, api):
    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student)

    response = api.as_user(scenario.auditor).post(f"/api/v1/desktops/{desktop.pk}/stop/")

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"image_version": 999999, "flavor": 0}, "image_version"), ({"flavor": 1}, "image_version")],
)
def test_unknown_image_or_missing_fields_are_a_400(scenario, compute_env, api, payload, field):
    response = api.as_user(scenario.student).post("/api/v1/desktops/", payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == ErrorCode.INVALID
    assert field in response.json()["detail"]


def test_unknown_flavor_is_a_400(scenario, compute_env, api):
    response = api.as_user(scenario.student).post(
        "/api/v1/desktops/", {"image_version": compute_env.version.pk, "flavor": 999999}, format="json"
    )
    assert response.status_code == 400
    assert "flavor" in response.json()["detail"]


def test_over_quota_is_a_409_and_nothing_is_created(scenario, compute_env, api):
    from tenants.services import quota_set

    quota_set(actor=scenario.sysadmin, tenant=scenario.tenant_a, limits={"desktops": 0})

    response = api.as_user(scenario.student).post(
        "/api/v1/desktops/", {"image_version": compute_env.version.pk, "flavor": compute_env.flavor.pk}, format="json"
    )

    assert response.status_code == 409, response.content
    assert response.json()["code"] == TenantsError.QUOTA_EXCEEDED
    assert not Desktop.objects.exists()


def test_a_student_creates_a_desktop_that_runs(scenario, compute_env, api, eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_user(scenario.student).post(
            "/api/v1/desktops/",
            {"image_version": compute_env.version.pk, "flavor": compute_env.flavor.pk, "name": "mine"},
            format="json",
        )
    assert response.status_code == 202, response.content
    desktop = Desktop.objects.get(pk=response.json()["id"])
    assert desktop.state == Desktop.State.RUNNING
    assert desktop.owner == scenario.student
    assert desktop.name == "mine"


def test_endpoints_are_for_the_system_admin_and_never_show_the_password(scenario, compute_env, api):
    assert api.as_user(scenario.tenant_admin).get("/api/v1/endpoints/").json()["results"] == []
    rows = api.as_user(scenario.sysadmin).get("/api/v1/endpoints/").json()["results"]
    assert [r["name"] for r in rows] == ["testdrv"]
    assert "password" not in rows[0] and "password_encrypted" not in rows[0]


def test_registering_an_endpoint_that_cannot_be_reached_is_a_400_with_a_code(scenario, api):
    response = api.as_user(scenario.sysadmin).post(
        "/api/v1/endpoints/",
        {"name": "dead", "kind": "libvirt", "url": "qemu+tcp://127.0.0.1:1/system"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == ComputeError.ENDPOINT_UNREACHABLE


def test_only_the_system_admin_registers_endpoints(scenario, api):
    response = api.as_user(scenario.tenant_admin).post(
        "/api/v1/endpoints/", {"name": "x", "kind": "libvirt", "url": "test:///default"}, format="json"
    )
    assert response.status_code == 403


def test_attaching_takes_a_size_or_a_disk_but_not_both(scenario, compute_env, api):
    desktop = desktop_of(scenario.tenant_a, env=compute_env, owner=scenario.student, state=Desktop.State.STOPPED)
    client = api.as_user(scenario.student)
    url = f"/api/v1/desktops/{desktop.pk}/volumes/"

    for body in ({}, {"size_gib": 1, "volume": 1}, {"size_gib": 0}, {"volume": "x"}):
        response = client.post(url, body, format="json")
        assert response.status_code == 400, (body, response.content)
    assert not desktop.volumes.exists()


def test_data_disk_list_costs_constant_queries_and_shows_only_the_callers(scenario, compute_env, api):
    from compute.models import Volume

    def grow(n):
        for i in range(n):
            Volume.objects.create(
                tenant=scenario.tenant_a,
                owner=scenario.student,
                name=f"v{i}",
                size_gib=1,
                state=Volume.State.DETACHED,
                endpoint=compute_env.endpoint,
            )

    assert_constant_queries(lambda: _fresh(api, scenario.student).get("/api/v1/volumes/"), grow)
    Volume.objects.create(
        tenant=scenario.tenant_a, owner=scenario.student2, name="theirs", size_gib=1, state=Volume.State.DETACHED
    )
    names = {row["name"] for row in api.as_user(scenario.student).get("/api/v1/volumes/").json()["results"]}
    assert "theirs" not in names and len(names) >= 1
    admin_names = {row["name"] for row in api.as_user(scenario.tenant_admin).get("/api/v1/volumes/").json()["results"]}
    assert "theirs" in admin_names
    assert api.as_user(scenario.stranger).get("/api/v1/volumes/").json()["results"] == []
