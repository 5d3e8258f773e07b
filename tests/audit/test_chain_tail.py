"""Issue #14.10: a database user without the HMAC key cannot hide a truncated tail or forge an archive.

Each test plays an intruder with database rights (lifting the triggers where they would stop them)
and shows that the verifier, or the database, notices.
"""

from datetime import timedelta

import pytest
import time_machine
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from audit import chain, triggers
from audit.actions import Action
from audit.models import AuditArchive, AuditChainHead, AuditEvent
from audit.services import archive_create, event_record

EVENTS = AuditEvent._meta.db_table
HEAD = AuditChainHead._meta.db_table


def _record(n):
    return [event_record(action=Action.TENANT_CREATED, actor_username=f"user{i}") for i in range(n)]


def _as_intruder(*statements):
    """Run raw SQL with the audit triggers lifted, the way someone with DROP TRIGGER rights would."""
    triggers.remove(connection)
    try:
        with connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
    finally:
        triggers.install(connection)


@pytest.mark.django_db
def test_the_database_refuses_to_move_the_chain_head_back():
    events = _record(3)

    for sql, params in (
        (f"UPDATE {HEAD} SET last_id = %s, last_hash = %s WHERE id = 1", [events[0].id, events[0].hash]),
        (f"UPDATE {HEAD} SET last_hash = %s WHERE id = 1", ["f" * 64]),
        (f"UPDATE {HEAD} SET signature = %s WHERE id = 1", ["0" * 64]),
    ):
        with (
            pytest.raises((OperationalError, IntegrityError, DatabaseError)),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
    head = AuditChainHead.objects.get(pk=1)
    assert (head.last_id, head.last_hash) == (events[-1].id, events[-1].hash)
    assert chain.verify().ok


@pytest.mark.django_db(transaction=True)
def test_verify_detects_a_tail_removed_with_the_head_set_back_to_match():
    events = _record(5)
    kept = events[2]
    _as_intruder(
        (f"DELETE FROM {EVENTS} WHERE id > %s", [kept.id]),
        (f"UPDATE {HEAD} SET last_id = %s, last_hash = %s WHERE id = 1", [kept.id, kept.hash]),
    )

    result = chain.verify()

    assert result.ok is False
    assert result.first_bad == kept.id + 1
    assert "signature" in result.reason


@pytest.mark.django_db(transaction=True)
def test_verify_detects_that_every_event_was_removed():
    _record(3)
    _as_intruder((f"DELETE FROM {EVENTS}", []))

    result = chain.verify()

    assert result.ok is False
    assert result.checked == 0


@pytest.mark.django_db(transaction=True)
def test_verify_detects_every_event_removed_and_the_head_reset_to_genesis():
    _record(3)
    _as_intruder(
        (f"DELETE FROM {EVENTS}", []),
        (f"UPDATE {HEAD} SET last_id = 0, last_hash = %s WHERE id = 1", ["0" * 64]),
    )

    assert chain.verify().ok is False


@pytest.mark.django_db(transaction=True)
def test_a_forged_archive_row_does_not_anchor_a_chain_whose_start_was_removed():
    events = _record(5)
    cut = events[2]
    _as_intruder((f"DELETE FROM {EVENTS} WHERE id <= %s", [cut.id]))
    AuditArchive.objects.create(
        file_name=f"audit-{1:012d}-{cut.id:012d}.jsonl.gz",
        first_id=1,
        last_id=cut.id,
        count=cut.id,
        last_hash=cut.hash,
        sha256="0" * 64,
        signature="0" * 64,
        before=timezone.now(),
    )

    result = chain.verify()

    assert result.ok is False
    assert result.first_bad == cut.id + 1
    assert "archive" in result.reason


@pytest.mark.django_db(transaction=True)
def test_a_genuine_signed_archive_anchors_the_chain_after_its_rows_are_removed(tmp_path, settings):
    settings.AUDIT_ARCHIVE_DIR = tmp_path
    with time_machine.travel(timezone.now() - timedelta(days=400), tick=False):
        old = _record(3)
    archive = archive_create(directory=tmp_path)
    assert archive is not None and archive.last_id >= old[-1].id
    _as_intruder((f"DELETE FROM {EVENTS} WHERE id <= %s", [archive.last_id]))

    assert chain.verify().ok

    # The same row, its file changed: the signature no longer verifies, nothing is anchored.
    path = tmp_path / archive.file_name
    path.write_bytes(path.read_bytes() + b"\0")
    assert chain.verify().ok is False
