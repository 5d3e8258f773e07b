"""compute.hypervisor.slot_acquire: at most ``max_concurrency`` tasks call an endpoint at once; the lease of a
worker that died expires and is cleared when it stands in the way."""

from datetime import timedelta

import pytest
from django.utils import timezone

from compute.hypervisor import EndpointBusy, slot_acquire, slot_release
from compute.models import Endpoint, EndpointLease
from tests.compute.conftest import make_env

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(scenario) -> Endpoint:
    endpoint = make_env(scenario).endpoint
    Endpoint.objects.filter(pk=endpoint.pk).update(max_concurrency=2)
    return endpoint


def _lease(endpoint, holder: str, *, seconds: int) -> None:
    expires_at = timezone.now() + timedelta(seconds=seconds)
    EndpointLease.objects.create(endpoint=endpoint, holder=holder, expires_at=expires_at)


def test_every_slot_taken_is_busy_and_a_released_slot_is_free_again(endpoint):
    slot_acquire(endpoint_id=endpoint.pk, holder="a")
    slot_acquire(endpoint_id=endpoint.pk, holder="b")
    with pytest.raises(EndpointBusy):
        slot_acquire(endpoint_id=endpoint.pk, holder="c")
    slot_release(endpoint_id=endpoint.pk, holder="a")
    slot_acquire(endpoint_id=endpoint.pk, holder="c")
    assert set(EndpointLease.objects.values_list("holder", flat=True)) == {"b", "c"}


def test_a_dead_workers_lease_is_cleared_when_it_stands_in_the_way(endpoint):
    _lease(endpoint, "dead", seconds=-1)
    _lease(endpoint, "alive", seconds=600)
    slot_acquire(endpoint_id=endpoint.pk, holder="new")
    assert set(EndpointLease.objects.values_list("holder", flat=True)) == {"alive", "new"}


def test_an_expired_lease_is_left_while_a_slot_is_free(endpoint):
    _lease(endpoint, "dead", seconds=-1)
    slot_acquire(endpoint_id=endpoint.pk, holder="new")
    assert set(EndpointLease.objects.values_list("holder", flat=True)) == {"dead", "new"}


def test_live_leases_keep_the_endpoint_busy_after_the_expired_are_cleared(endpoint):
    _lease(endpoint, "alive-1", seconds=600)
    _lease(endpoint, "alive-2", seconds=600)
    _lease(endpoint, "dead", seconds=-1)  # a third lease: max_concurrency was lowered meanwhile
    with pytest.raises(EndpointBusy):
        slot_acquire(endpoint_id=endpoint.pk, holder="new")
    assert not EndpointLease.objects.filter(holder="new").exists()


def test_a_redelivered_task_takes_its_own_lease_back_on_a_full_endpoint(endpoint):
    _lease(endpoint, "redelivered", seconds=5)
    _lease(endpoint, "other", seconds=600)
    slot_acquire(endpoint_id=endpoint.pk, holder="redelivered")
    lease = EndpointLease.objects.get(holder="redelivered")
    assert lease.expires_at > timezone.now() + timedelta(seconds=60)
