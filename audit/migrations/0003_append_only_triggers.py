"""Triggers that refuse UPDATE and DELETE on audit events for everyone (MySQL/MariaDB and SQLite)."""

from django.db import migrations


def install(apps, schema_editor):
    from audit import triggers

    # The triggers of this schema; 0004 adds the head's, which reads a column made there.
    triggers.install(schema_editor.connection, {"audit_event_no_update", "audit_event_no_delete", "audit_head_no_delete"})


def remove(apps, schema_editor):
    from audit import triggers

    triggers.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_chain_policy_reports")]

    operations = [migrations.RunPython(install, remove)]
