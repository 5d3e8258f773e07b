"""Retention: archiving writes signed gzip files and deletes nothing; the periodic verification alerts."""

import gzip
import hmac
import json
import logging
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from audit import chain
from audit.actions import Action
from audit.models import AuditArchive, AuditEvent, ChainVerification
from audit.services import event_record
from audit.tasks import verify_chain


@pytest.mark.django_db
def test_archive_writes_old_events_to_a_signed_file_and_keeps_them(tmp_path, capsys):
    with time_machine.travel(timezone.now() - timedelta(days=200), tick=False):
        old = [event_record(action=Action.LOGIN_SUCCEEDED, actor_username=f"u{i}") for i in range(3)]
    recent = event_record(action=Action.LOGIN_SUCCEEDED, actor_username="recent")

    call_command("archive_audit", "--dir", str(tmp_path), "--json")
    payload = json.loads(capsys.readouterr().out)

    assert (payload["first_id"], payload["last_id"], payload["count"]) == (old[0].id, old[-1].id, 3)
    data = (tmp_path / AuditArchive.objects.get().file_name).read_bytes()
    lines = gzip.decompress(data).decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [e.id for e in old]
    archive = AuditArchive.objects.get()
    assert hmac.compare_digest(archive.signature, chain.file_signature(data)[1])
    assert archive.last_hash == old[-1].hash
    assert AuditEvent.objects.filter(pk__in=[e.id for e in old] + [recent.id]).count() == 4  # nothing deleted
    assert AuditEvent.objects.filter(action=Action.AUDIT_ARCHIVED).exists()
    assert chain.verify().ok


@pytest.mark.django_db
def test_archive_never_takes_events_inside_the_retention_period(tmp_path):
    event_record(action=Action.LOGIN_SUCCEEDED)
    call_command("archive_audit", "--dir", str(tmp_path), "--older-than", "1")  # below 180: the policy wins
    assert not AuditArchive.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_periodic_task_records_the_result_and_alerts_on_a_broken_chain(caplog):
    from django.db import connection

    from audit import triggers

    events = [event_record(action=Action.LOGIN_SUCCEEDED) for _ in range(3)]
    assert verify_chain()["ok"] is True
    triggers.remove(connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {AuditEvent._meta.db_table} SET source_ip = '6.6.6.6' WHERE id = %s", [events[1].id]
            )
    finally:
        triggers.install(connection)

    with caplog.at_level(logging.ERROR, logger="audit.chain"):
        result = verify_chain()

    assert result["first_bad"] == events[1].id
    assert "AUDIT CHAIN BROKEN" in caplog.text
    assert [v.ok for v in ChainVerification.objects.order_by("id")] == [True, False]


def test_the_nightly_verification_is_scheduled():
    from portal.celery import app

    assert any(entry["task"] == "audit.tasks.verify_chain" for entry in app.conf.beat_schedule.values())


@pytest.mark.django_db
def test_production_sends_an_enforced_content_security_policy(client, settings):
    settings.CONTENT_SECURITY_POLICY_ENFORCED = True
    response = client.get("/accounts/login/")
    assert "default-src 'self'" in response["Content-Security-Policy"]
    settings.CONTENT_SECURITY_POLICY_ENFORCED = False
    assert "Content-Security-Policy-Report-Only" in client.get("/accounts/login/")
