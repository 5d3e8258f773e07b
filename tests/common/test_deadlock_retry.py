"""retry_on_deadlock re-runs a transaction MariaDB chose as a deadlock victim, long enough to outlast
a burst, and never hides another error or a deadlock inside an outer transaction."""

import pytest
from django.db import OperationalError, transaction

from common import db


def _flaky(failures: int, code: int = 1213):
    calls = []

    @db.retry_on_deadlock
    def fn():
        calls.append(1)
        if len(calls) <= failures:
            raise OperationalError(code, "Deadlock found when trying to get lock")
        return "done"

    return fn, calls


@pytest.fixture
def sleeps(monkeypatch):
    waited = []
    monkeypatch.setattr(db.time, "sleep", waited.append)
    return waited


def test_a_burst_of_five_deadlocks_in_a_row_is_waited_out(sleeps):
    fn, calls = _flaky(5)
    assert fn() == "done"
    assert len(calls) == 6
    assert len(sleeps) == 5


def test_it_gives_up_after_the_last_attempt_and_says_why(sleeps):
    fn, calls = _flaky(db.ATTEMPTS)
    with pytest.raises(OperationalError) as exc:
        fn()
    assert exc.value.args[0] == 1213
    assert len(calls) == db.ATTEMPTS


def test_the_waits_double_are_capped_and_total_a_few_seconds_at_most():
    lowest = [db.backoff_seconds(a) / 2 for a in range(db.ATTEMPTS - 1)]
    assert all(db.backoff_seconds(a) <= 2 * db.BACKOFF_CAP_SECONDS for a in range(20))
    assert 1.5 < sum(min(0.02 * 2**a, db.BACKOFF_CAP_SECONDS) for a in range(db.ATTEMPTS - 1)) < 10
    assert max(lowest) <= db.BACKOFF_CAP_SECONDS


def test_other_database_errors_are_not_retried(sleeps):
    fn, calls = _flaky(1, code=1054)  # unknown column
    with pytest.raises(OperationalError):
        fn()
    assert len(calls) == 1
    assert sleeps == []


@pytest.mark.django_db
def test_inside_an_outer_transaction_the_deadlock_goes_up_at_once(sleeps):
    fn, calls = _flaky(1)
    with pytest.raises(OperationalError), transaction.atomic():
        fn()
    assert len(calls) == 1
