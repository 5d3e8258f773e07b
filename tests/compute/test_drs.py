"""Load balancing (DRS): what it recommends off a hot host, its budget, its pause after a class starts, the
automatic tick starting migrations (and the recommend mode starting none), and its page (system admin)."""

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from common.errors import Forbidden, InvalidInput
from compute import drs
from compute.models import Desktop, DesktopMigration, DrsPolicy
from compute.tasks.migration import drs_tick
from tests.compute.test_migration import _desktop, hosts  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def hot(scenario, hosts):  # noqa: F811
    """n1 at 92 % of its 3072 MiB (three running desktops), n2 and n3 empty; a stopped one does not count."""
    for name, mib in (("big", 1536), ("mid", 768), ("small", 512)):
        _desktop(scenario, hosts["n1"], name=name, memory_mib=mib)
    _desktop(scenario, hosts["n1"], name="off", memory_mib=2048, state=Desktop.State.STOPPED)
    return hosts["n1"].endpoint.cluster


def _policy(cluster, **fields):
    defaults = {"mode": "recommend", "threshold_percent": 80, "max_moves": 2, "class_grace_minutes": 15}
    return DrsPolicy.objects.create(cluster=cluster, **{**defaults, **fields})


def test_drs_moves_the_largest_running_desktops_off_a_hot_host_to_the_coolest_ones(hot):
    _policy(hot)
    loads = {load.host.name: load.percent for load in drs.host_loads(hot)}
    assert loads == {"n1": 92, "n2": 0, "n3": 0}
    recs = drs.drs_recommendations(hot)
    # One move is enough: the 1536 MiB desktop takes n1 to 42 %.
    assert [(r.desktop.name, r.source.name, r.target.name, r.source_percent, r.target_percent) for r in recs] == [
        ("big", "n1", "n2", 92, 50)
    ]


def test_drs_keeps_to_its_budget_and_pauses_while_a_class_starts(scenario, hot):
    policy = _policy(hot, threshold_percent=20, max_moves=1)
    assert len(drs.drs_recommendations(hot, policy)) == 1
    from compute import services
    from compute.classroom.models import ClassSession, DesktopPool
    from compute.models import Endpoint, Image, ImageVersion
    from tests.classroom.conftest import make_course

    course = make_course(scenario)
    Desktop.objects.filter(name="big").update(course=course)
    flavor = services.flavor_create(actor=scenario.sysadmin, name="p", vcpus=1, memory_mib=512, disk_gib=1)
    image = Image.objects.create(name="lab", os_type="linux")
    version = ImageVersion.objects.create(
        image=image, version=1, endpoint=Endpoint.objects.get(name="n1"), pool="p", volume="v"
    )
    pool = DesktopPool.objects.create(
        course=course, tenant=scenario.tenant_a, name="lab", image_version=version, flavor=flavor
    )
    now = timezone.now()
    ClassSession.objects.create(
        pool=pool,
        class_time=course.class_times.get(),
        date=now.date(),
        starts_at=now - datetime.timedelta(minutes=5),
        ends_at=now + datetime.timedelta(minutes=40),
    )
    assert drs.drs_recommendations(hot, policy) == []


def test_the_automatic_tick_starts_the_migrations_the_recommend_mode_only_shows(hot):
    policy = _policy(hot)
    assert drs_tick() == 0 and not DesktopMigration.objects.exists()
    policy.mode = DrsPolicy.Mode.AUTOMATIC
    policy.save()
    assert drs_tick() == 1
    migration = DesktopMigration.objects.get()
    assert (migration.reason, migration.source_name, migration.target_name) == ("drs", "n1", "n2")
    # The move under way already counts: n1 at 42 %, n2 at 50 %; nothing more to do.
    assert drs.drs_recommendations(hot) == []


def test_drs_settings_are_the_system_admins_and_checked(scenario, hot, settings):
    settings.SECOND_FACTOR_REQUIRED = False
    with pytest.raises(Forbidden):
        drs.drs_policy_set(
            actor=scenario.teacher,
            cluster=hot,
            mode="automatic",
            threshold_percent=80,
            max_moves=2,
            class_grace_minutes=5,
        )
    with pytest.raises(InvalidInput):
        drs.drs_policy_set(
            actor=scenario.sysadmin,
            cluster=hot,
            mode="automatic",
            threshold_percent=0,
            max_moves=2,
            class_grace_minutes=5,
        )
    client = Client()
    client.force_login(scenario.sysadmin)
    response = client.post(
        "/compute/admin/drs/",
        {"cluster": hot.pk, "mode": "recommend", "threshold_percent": 80, "max_moves": 2, "class_grace_minutes": 10},
    )
    assert response.status_code == 302 and DrsPolicy.objects.get(cluster=hot).mode == "recommend"
    page = client.get("/compute/admin/drs/").content.decode()
    assert 'data-testid="drs-recommendations"' in page and "big (1536 MiB)" in page and "n1: 92%" in page
    teacher = Client()
    teacher.force_login(scenario.teacher)
    assert teacher.get("/compute/admin/drs/").status_code == 404
