"""Nonsense dates and sizes are a 400 naming the field, in the API and in the forms, from one source
(common.limits): years 2000-2100, a term of at most about four years, an end after its start,
no negative or absurd sizes (issue 19)."""

import datetime
from decimal import Decimal

import pytest

from billing.forms import BudgetForm, PricePlanForm
from common import limits
from common.errors import ErrorCode, InvalidInput
from compute.forms import FlavorForm, VolumeForm
from tenants import services
from tenants.forms import ClassTimeForm, CourseForm, LimitsForm, RequestForm
from tests.classroom.isolation import MAKERS as CLASSROOM_MAKERS
from tests.tenants.isolation import MAKERS as TENANTS_MAKERS

COURSE = {
    "tenant": "cs",
    "code": "LIM101",
    "name": "边界",
    "teacher": "a_teacher",
    "term_start": "2026-09-01",
    "term_end": "2027-01-15",
}
FAR_TERM = {"term_start": "2026-09-01", "term_end": "2031-09-01"}  # five years

# A course body that is wrong in one field -> that field
BAD_COURSES = [
    ({"term_start": "1999-12-31"}, "term_start"),
    ({"term_end": "2101-01-01"}, "term_end"),
    ({"term_end": "5934-05-17"}, "term_end"),
    ({"term_start": "0001-01-01"}, "term_start"),
    (FAR_TERM, "term_end"),
    ({"term_end": "2026-08-31"}, "term_end"),
]


def _named(response, field: str) -> None:
    answer = f"{response.status_code} {response.content[:300]!r}"
    assert response.status_code == 400, answer
    assert field in response.json()["detail"], answer


@pytest.mark.parametrize(("change", "field"), BAD_COURSES)
def test_a_course_with_nonsense_dates_is_refused_naming_the_field(api, scenario, change, field):
    client = api.as_user(scenario.tenant_admin)
    _named(client.post("/api/v1/courses/", {**COURSE, **change}, format="json"), field)
    url = "/api/v1/courses/{id}/".format(**TENANTS_MAKERS["/api/v1/courses/{id}/"](scenario))
    _named(client.patch(url, change, format="json"), field)
    _named(client.put(url, change, format="json"), field)

    form = CourseForm(data={**COURSE, **change})
    assert not form.is_valid() and field in form.errors, form.errors


def test_a_term_of_four_years_is_accepted(api, scenario):
    body = {**COURSE, "term_start": "2026-09-01", "term_end": "2030-08-31"}
    response = api.as_user(scenario.tenant_admin).post("/api/v1/courses/", body, format="json")
    assert response.status_code == 201, response.content
    assert CourseForm(data=body).is_valid()


def test_patching_one_date_checks_the_term_it_makes_with_the_other(api, scenario):
    """The serializer sees one date; the service sees the term (2026-09-01 .. 2031-01-01)."""
    url = "/api/v1/courses/{id}/".format(**TENANTS_MAKERS["/api/v1/courses/{id}/"](scenario))
    response = api.as_user(scenario.tenant_admin).patch(url, {"term_end": "2031-01-01"}, format="json")
    _named(response, "term_end")
    assert response.json()["code"] == ErrorCode.OUT_OF_RANGE


def test_the_service_refuses_a_long_term_whoever_calls_it(scenario):
    with pytest.raises(InvalidInput) as refused:
        services.course_create(
            actor=None,
            tenant=scenario.tenant_a,
            code="SVC1",
            name="x",
            teacher=scenario.teacher,
            term_start=datetime.date(2026, 9, 1),
            term_end=datetime.date(2099, 1, 1),
        )
    assert list(refused.value.detail) == ["term_end"]


def test_a_class_that_ends_before_it_starts_is_refused_naming_end_time(api, scenario):
    url = "/api/v1/courses/{id}/class-times/".format(**TENANTS_MAKERS["/api/v1/courses/{id}/class-times/"](scenario))
    body = [{"weekday": 1, "start_time": "10:00", "end_time": "09:00"}]
    response = api.as_user(scenario.tenant_admin).put(url, body, format="json")
    assert response.status_code == 400, response.content
    assert "end_time" in response.json()["detail"]["0"], response.content
    form = ClassTimeForm(data=body[0])
    assert not form.is_valid() and "end_time" in form.errors


@pytest.mark.parametrize("day", ["1999-12-31", "2101-01-01"])
def test_a_skipped_class_day_outside_the_years_is_refused(api, scenario, day):
    url = "/api/v1/pools/{id}/skip/".format(**CLASSROOM_MAKERS["/api/v1/pools/{id}/skip/"](scenario))
    _named(api.as_user(scenario.tenant_admin).post(url, {"date": day}, format="json"), "date")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"memory_mib": limits.MEMORY_MIB_MAX + 1}, "memory_mib"),
        ({"disk_gib": limits.DISK_GIB_MAX + 1}, "disk_gib"),
        ({"disk_gib": -1}, "disk_gib"),
        ({"vcpus": 0}, "vcpus"),
        ({"vcpus": limits.VCPUS_MAX + 1}, "vcpus"),
    ],
)
def test_an_absurd_flavor_is_refused_naming_the_field(api, scenario, change, field):
    body = {"name": "lim-flavor", "vcpus": 2, "memory_mib": 2048, "disk_gib": 20, **change}
    _named(api.as_user(scenario.sysadmin).post("/api/v1/flavors/", body, format="json"), field)
    form = FlavorForm(data=body)
    assert not form.is_valid() and field in form.errors


def test_the_flavor_service_refuses_an_absurd_size_naming_it(scenario):
    from compute.services import flavor_create

    with pytest.raises(InvalidInput) as refused:
        flavor_create(actor=scenario.sysadmin, name="huge", vcpus=2, memory_mib=2048, disk_gib=10**9)
    assert list(refused.value.detail) == ["disk_gib"]


@pytest.mark.parametrize("amount", ["10000000000000", "-5", "0"])
def test_an_absurd_budget_is_refused_naming_amount(api, scenario, amount):
    body = {"tenant": "cs", "amount": amount}
    _named(api.as_user(scenario.finance).post("/api/v1/budgets/", body, format="json"), "amount")
    form = BudgetForm(data=body, tenants=[scenario.tenant_a])
    assert not form.is_valid() and "amount" in form.errors


@pytest.mark.parametrize("when", ["1999-12-31T00:00", "2101-01-01T00:00", "9999-12-31"])
def test_a_price_plan_outside_the_years_is_refused_naming_effective_from(api, scenario, when):
    body = {"tenant": "cs", "name": "远期", "effective_from": when, "rates": {"vcpu": "0.06"}}
    _named(api.as_user(scenario.finance).post("/api/v1/price-plans/", body, format="json"), "effective_from")
    form = PricePlanForm(data={**body, "effective_from": when.replace("T", " ")}, tenants=[scenario.tenant_a])
    assert not form.is_valid() and "effective_from" in form.errors


def test_api_and_forms_take_their_bounds_from_one_place():
    from billing.api import PricePlanCreateSerializer
    from compute.api.catalog import FlavorCreateSerializer
    from compute.api.desktops import VolumeAttachSerializer
    from compute.classroom.api import SkipSerializer
    from tenants.api.serializers import AmountsSerializer, CourseCreateSerializer, CourseUpdateSerializer

    flavor_api, flavor_form = FlavorCreateSerializer().fields, FlavorForm().fields
    for name, top in (
        ("vcpus", limits.VCPUS_MAX),
        ("memory_mib", limits.MEMORY_MIB_MAX),
        ("disk_gib", limits.DISK_GIB_MAX),
    ):
        assert flavor_api[name].max_value == flavor_form[name].max_value == top
    assert VolumeAttachSerializer().fields["size_gib"].max_value == limits.VOLUME_GIB_MAX
    assert VolumeForm().fields["size_gib"].max_value == limits.VOLUME_GIB_MAX
    assert AmountsSerializer().fields["vcpu"].max_value == limits.AMOUNT_MAX
    assert LimitsForm().fields["vcpu"].max_value == limits.AMOUNT_MAX
    assert RequestForm().fields["vcpu"].max_value == limits.AMOUNT_MAX
    assert BudgetForm().fields["amount"].max_value == limits.MONEY_MAX
    dated = [
        CourseCreateSerializer().fields["term_start"],
        CourseUpdateSerializer().fields["term_end"],
        SkipSerializer().fields["date"],
        PricePlanCreateSerializer().fields["effective_from"],
        CourseForm().fields["term_start"],
        PricePlanForm().fields["effective_from"],
    ]
    assert all(limits.validate_year in field.validators for field in dated)


def test_money_max_is_what_the_money_columns_hold():
    from billing.models import MONEY

    assert Decimal(10 ** (MONEY["max_digits"] - MONEY["decimal_places"])) - Decimal("0.01") == limits.MONEY_MAX
