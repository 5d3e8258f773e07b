"""The chain head carries an HMAC of its position, and a trigger refuses moving it back (issue #14.10)."""

from django.db import migrations, models


def sign_head(apps, schema_editor):
    from audit.chain import head_signature

    head_model = apps.get_model("audit", "AuditChainHead")
    for head in head_model.objects.all():
        head.signature = head_signature(head.last_id, head.last_hash)
        head.save(update_fields=["signature"])


def install(apps, schema_editor):
    from audit import triggers

    triggers.install(schema_editor.connection)


def remove(apps, schema_editor):
    from audit import triggers

    with schema_editor.connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS audit_head_no_rewind")


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_append_only_triggers")]

    operations = [
        migrations.AddField(
            model_name="auditchainhead",
            name="signature",
            field=models.CharField(default="", max_length=64),
        ),
        migrations.RunPython(sign_head, migrations.RunPython.noop),
        migrations.RunPython(install, remove),
    ]
