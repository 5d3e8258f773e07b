from django.db import migrations


def install(apps, schema_editor):
    from billing import triggers

    triggers.install(schema_editor.connection)


def remove(apps, schema_editor):
    from billing import triggers

    triggers.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_metering_pricing_invoices")]

    operations = [migrations.RunPython(install, remove)]
