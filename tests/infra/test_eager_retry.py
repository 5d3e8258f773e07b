"""tests/harness/guest.py: a transient hypervisor error's Retry, raised through eager tasks, is run again as a
worker would run it (the testbed's Debian ebtables-nft race), and given up after a few attempts."""

import pytest
from celery.exceptions import Retry

from tests.harness import guest


class _Task:
    def __init__(self, failures: int):
        self.failures, self.runs = failures, 0

    def apply(self):
        self.runs += 1
        if self.runs <= self.failures:
            raise Retry(when=0, sig=self)


def test_a_retried_task_is_run_again_until_it_succeeds(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    task = _Task(failures=2)
    guest._run_again(Retry(when=0, sig=task))
    assert task.runs == 3


def test_a_task_that_keeps_failing_is_given_up(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    task = _Task(failures=99)
    with pytest.raises(Retry):
        guest._run_again(Retry(when=0, sig=task), attempts=3)
    assert task.runs == 3
