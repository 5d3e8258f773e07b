"""/healthz: the database, the broker, a live worker and the hypervisors."""

import pytest


@pytest.mark.django_db
def test_without_a_worker_health_is_503_and_says_why(client):
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["db"] == "ok"
    assert body["broker"] == "ok"
    assert body["worker"] == "no worker heartbeat"
    assert body["hypervisors"]["default"] == "ok"


@pytest.mark.worker
def test_with_a_real_worker_on_the_broker_health_is_200(client, celery_worker):
    response = client.get("/healthz")

    assert response.status_code == 200, response.content
    assert response.json()["worker"] == "ok"


@pytest.mark.django_db
def test_an_unreachable_broker_makes_health_503(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")


@pytest.mark.django_db
def test_an_unreachable_hypervisor_is_reported_but_not_fatal(client, settings):
    settings.DEFAULT_HYPERVISOR_URI = "qemu+tcp://127.0.0.1:1/system"

    body = client.get("/healthz").json()

    assert body["hypervisors"]["default"].startswith("error")
