"""The hash chain: appends link up, the verifier names the first tampered event, the database refuses changes."""

import json

import pytest
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction

from audit import chain, triggers
from audit.actions import Action
from audit.models import GENESIS_HASH, AppendOnlyError, AuditChainHead, AuditEvent
from audit.services import event_record


def _record(n, **kwargs):
    return [
        event_record(action=Action.TENANT_CREATED, actor_username=f"user{i}", detail={"i": i, "名": "值"}, **kwargs)
        for i in range(n)
    ]


@pytest.mark.django_db
def test_events_link_into_a_chain_that_verifies():
    events = _record(5)

    assert events[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    assert chain.verify().as_json() == {"ok": True, "checked": 5, "first_bad": None, "reason": ""}


@pytest.mark.django_db
def test_ids_are_consecutive_chain_positions_and_the_head_follows():
    events = _record(3)
    head = AuditChainHead.objects.get(pk=1)

    assert [e.id for e in events] == [events[0].id, events[0].id + 1, events[0].id + 2]
    assert (head.last_id, head.last_hash) == (events[-1].id, events[-1].hash)


@pytest.mark.django_db
def test_a_rolled_back_change_takes_its_event_and_the_head_with_it():
    _record(2)
    with pytest.raises(RuntimeError), transaction.atomic():
        event_record(action=Action.TENANT_CREATED)
        raise RuntimeError("the service failed after recording")
    _record(1)

    assert chain.verify().ok
    assert AuditEvent.objects.count() == 3


@pytest.mark.django_db
def test_orm_update_and_delete_are_refused():
    event = _record(1)[0]

    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        event.reason = "changed"
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()


@pytest.mark.django_db
def test_the_database_refuses_update_and_delete_even_in_raw_sql():
    event = _record(1)[0]
    table = AuditEvent._meta.db_table

    assert triggers.installed(connection) == {name for name, *_rest in triggers.TRIGGERS}
    for sql in (f"UPDATE {table} SET reason = 'x' WHERE id = %s", f"DELETE FROM {table} WHERE id = %s"):
        with (
            pytest.raises((OperationalError, IntegrityError, DatabaseError)),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [event.pk])
    # A bulk ORM update that bypasses the model's guard meets the trigger too.
    with pytest.raises((OperationalError, IntegrityError, DatabaseError)), transaction.atomic():
        from django.db.models import QuerySet

        QuerySet.update(AuditEvent.objects.filter(pk=event.pk), reason="x")
    assert AuditEvent.objects.get(pk=event.pk).reason == ""


def _tamper(sql, params):
    """Change a row the way an intruder with database access would: lift the triggers first."""
    triggers.remove(connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        triggers.install(connection)


@pytest.mark.django_db(transaction=True)
def test_verify_names_the_first_changed_event(capsys):
    events = _record(6)
    target = events[3]
    _tamper(f"UPDATE {AuditEvent._meta.db_table} SET actor_username = %s WHERE id = %s", ["intruder", target.pk])

    with pytest.raises(SystemExit):
        call_command("verify_audit_chain", "--json")
    output = json.loads(capsys.readouterr().out)

    assert output["ok"] is False
    assert output["first_bad"] == target.pk
    assert output["checked"] == 3


@pytest.mark.django_db(transaction=True)
def test_verify_names_an_event_whose_stored_hash_was_replaced():
    events = _record(4)
    forged = chain.event_hash(chain.values_of(events[1])[:-1] + ("0" * 64,))
    _tamper(f"UPDATE {AuditEvent._meta.db_table} SET hash = %s WHERE id = %s", [forged, events[1].pk])

    result = chain.verify()

    assert (result.ok, result.first_bad) == (False, events[1].pk)


@pytest.mark.django_db(transaction=True)
def test_verify_notices_events_removed_from_the_end():
    events = _record(4)
    _tamper(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [events[-1].pk])

    result = chain.verify()

    assert (result.ok, result.first_bad) == (False, events[-1].pk)


@pytest.mark.django_db(transaction=True)
def test_verify_command_exits_non_zero_on_a_broken_chain():
    events = _record(2)
    _tamper(f"UPDATE {AuditEvent._meta.db_table} SET reason = 'x' WHERE id = %s", [events[0].pk])

    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_audit_chain")

    assert exit_info.value.code == 1


@pytest.mark.django_db
def test_an_event_that_cannot_be_written_fails_the_change_it_records(scenario):
    from tenants.models import Tenant

    with pytest.raises(DatabaseError):
        _create_with_broken_audit(scenario)
    assert not Tenant.objects.filter(slug="broken").exists()


def _create_with_broken_audit(scenario):
    from unittest import mock

    from tenants.services import tenant_create

    with mock.patch("audit.chain.AuditEvent.save", side_effect=DatabaseError("audit table unavailable")):
        tenant_create(actor=scenario.sysadmin, slug="broken", name_zh="坏", kind="college", parent=scenario.university)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_queue_on_the_chain_head_instead_of_forking_it():
    import threading

    from django.db import connections

    errors = []

    def writer(n):
        try:
            for i in range(10):
                with transaction.atomic():
                    event_record(action=Action.DESKTOP_STARTED, actor_username=f"w{n}", detail={"i": i})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    assert ids == list(range(ids[0], ids[0] + 80))
    assert chain.verify().as_json() == {"ok": True, "checked": 80, "first_bad": None, "reason": ""}
