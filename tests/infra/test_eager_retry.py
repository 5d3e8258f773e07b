"""tests/harness/eager.py: under the ``eager`` fixture a task that asks for a retry (a transient hypervisor
error: the testbed's Debian ebtables-nft race) runs again as a worker would run it, after its countdown
(capped), until it succeeds or its own ``max_retries`` ends it with the error."""

import pytest

from portal.celery import app
from tests.harness import eager as eager_retries

RUNS: list[int] = []


class Transient(Exception):
    pass


@app.task(bind=True, name="tests.infra.flaky", max_retries=3)
def flaky(self, failures: int) -> str:
    RUNS.append(self.request.retries)
    if len(RUNS) <= failures:
        raise self.retry(exc=Transient("firewall busy"), countdown=30)
    return "made"


@pytest.fixture
def waits(monkeypatch):
    RUNS.clear()
    slept: list[float] = []
    monkeypatch.setattr(eager_retries.time, "sleep", slept.append)
    return slept


def test_a_retried_task_runs_again_after_its_capped_countdown_until_it_succeeds(eager, waits):
    assert flaky.delay(2).get() == "made"
    assert RUNS == [0, 1, 2]  # each run knows its retry count, as on a worker
    assert waits == [eager_retries.MAX_WAIT] * 2


def test_a_task_that_keeps_failing_ends_with_its_error_after_max_retries(eager, waits):
    with pytest.raises(Transient, match="firewall busy"):
        flaky.delay(99)
    assert RUNS == [0, 1, 2, 3]


def test_without_the_fixture_apply_is_celerys_own():
    from celery.app.task import Task

    assert Task.apply is not eager_retries.retrying_apply
