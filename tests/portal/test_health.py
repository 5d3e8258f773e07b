"""/healthz: the database, the broker, a live worker and the hypervisors (as the worker last found them).

Issue #14.4: /healthz never connects to a hypervisor (the worker probes each endpoint at most once per
30 s), and without credentials it says only ok/degraded per component.
"""

import datetime

import pytest

from portal.models import HypervisorProbe
from portal.services import hypervisors_probe

COMPONENTS = {"db", "broker", "worker", "hypervisors"}


@pytest.fixture
def admin_client(client, scenario, settings):
    settings.SECOND_FACTOR_REQUIRED = False  # the system admin's session: a verified one, for this test
    client.force_login(scenario.sysadmin)
    return client


@pytest.mark.django_db
def test_without_a_worker_health_is_503_and_says_only_degraded_to_anyone(client):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"db": "ok", "broker": "ok", "worker": "degraded", "hypervisors": "degraded"}


@pytest.mark.django_db
def test_the_system_admin_sees_why(admin_client):
    hypervisors_probe()

    body = admin_client.get("/healthz").json()

    assert body["worker"] == "no worker heartbeat"
    assert body["hypervisors"] == {"default": "ok"}


@pytest.mark.django_db
def test_a_signed_in_non_admin_sees_only_ok_or_degraded(client, scenario, settings):
    settings.DEFAULT_HYPERVISOR_URI = "qemu+tcp://127.0.0.1:1/system"
    hypervisors_probe()
    client.force_login(scenario.tenant_admin)

    body = client.get("/healthz").json()

    assert set(body) == COMPONENTS and set(body.values()) <= {"ok", "degraded"}


@pytest.mark.worker
def test_with_a_real_worker_on_the_broker_health_is_200(client, celery_worker):
    response = client.get("/healthz")

    assert response.status_code == 200, response.content
    assert response.json()["worker"] == "ok"


@pytest.mark.django_db
def test_an_unreachable_broker_makes_health_503(client, admin_client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}

    response = admin_client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")


@pytest.mark.django_db
def test_an_unreachable_hypervisor_is_reported_without_its_uri_or_error_to_anonymous(client, settings):
    settings.DEFAULT_HYPERVISOR_URI = "qemu+tcp://127.0.0.1:1/system"
    hypervisors_probe()

    response = client.get("/healthz")

    assert response.json()["hypervisors"] == "degraded"
    for leak in ("qemu", "127.0.0.1", "error", "default"):
        assert leak not in response.content.decode()


@pytest.mark.django_db
def test_an_unreachable_hypervisor_is_reported_but_not_fatal_to_the_admin(admin_client, settings):
    settings.DEFAULT_HYPERVISOR_URI = "qemu+tcp://127.0.0.1:1/system"
    hypervisors_probe()

    body = admin_client.get("/healthz").json()

    assert body["hypervisors"]["default"].startswith("error")


@pytest.mark.django_db
def test_healthz_never_connects_to_a_hypervisor_and_the_probe_once_per_30_seconds(client, monkeypatch):
    import time_machine
    from django.utils import timezone

    from compute import health

    opened = []
    real_check = health._check  # noqa: SLF001

    def counting_check(*args, **kwargs):
        opened.append(args[1])
        return real_check(*args, **kwargs)

    monkeypatch.setattr(health, "_check", counting_check)

    for _ in range(20):  # a load balancer, or someone flooding the public endpoint
        client.get("/healthz")
    assert opened == []

    hypervisors_probe()
    hypervisors_probe()  # a second beat, or a second worker, within the interval
    assert len(opened) == 1

    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=31)):
        hypervisors_probe()
    assert len(opened) == 2
    assert HypervisorProbe.objects.get(endpoint="default").status == "ok"


@pytest.mark.django_db
def test_a_probe_the_worker_stopped_making_is_reported_stale(admin_client):
    import time_machine
    from django.utils import timezone

    hypervisors_probe()
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=10)):
        body = admin_client.get("/healthz").json()

    assert body["hypervisors"] == {"default": "stale"}
