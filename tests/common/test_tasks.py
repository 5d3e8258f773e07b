import pytest
from django.db import transaction

from common.tasks import enqueue, task_named

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_named_task_is_found_by_its_module_path():
    from portal.tasks import heartbeat_cleanup

    assert task_named("portal.tasks.heartbeat_cleanup") is heartbeat_cleanup


def test_a_misspelt_task_name_fails_inside_the_service():
    with pytest.raises(AttributeError):
        enqueue("portal.tasks.no_such_task")


def test_the_task_is_sent_only_when_the_transaction_commits(monkeypatch):
    from portal.tasks import heartbeat_cleanup

    sent = []
    monkeypatch.setattr(heartbeat_cleanup, "apply_async", lambda **kw: sent.append(kw))
    with transaction.atomic():
        task_id = enqueue("portal.tasks.heartbeat_cleanup", 7, queue="site.east")
        assert sent == []
    assert sent == [{"args": (7,), "kwargs": None, "task_id": task_id, "queue": "site.east"}]


def test_a_rolled_back_transaction_sends_nothing(monkeypatch):
    from portal.tasks import heartbeat_cleanup

    sent = []
    monkeypatch.setattr(heartbeat_cleanup, "apply_async", lambda **kw: sent.append(kw))
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("portal.tasks.heartbeat_cleanup")
        raise RuntimeError
    assert sent == []
