"""Price plans take effect at a whole hour, not only at a day's start.

``effective_from`` becomes a datetime; an existing plan's date becomes that day's local midnight
(the instant it took effect under the old rule), so no price changes.
"""

from datetime import datetime, time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import migrations, models


def dates_to_instants(apps, schema_editor):
    PricePlan = apps.get_model("billing", "PricePlan")
    zone = ZoneInfo(settings.TIME_ZONE)
    for plan in PricePlan.objects.all():
        plan.effective_at = datetime.combine(plan.effective_from, time(0), tzinfo=zone)
        plan.save(update_fields=["effective_at"])


def instants_to_dates(apps, schema_editor):
    PricePlan = apps.get_model("billing", "PricePlan")
    zone = ZoneInfo(settings.TIME_ZONE)
    for plan in PricePlan.objects.all():
        plan.effective_from = plan.effective_at.astimezone(zone).date()
        plan.save(update_fields=["effective_from"])


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_usage_desktop_without_db_constraint"),
    ]

    operations = [
        migrations.AddField(
            model_name="priceplan",
            name="effective_at",
            field=models.DateTimeField(null=True),
        ),
        # Nullable first, so that going back can re-add the date column before filling it.
        migrations.AlterField(model_name="priceplan", name="effective_from", field=models.DateField(null=True)),
        migrations.RunPython(dates_to_instants, instants_to_dates),
        migrations.RemoveConstraint(model_name="priceplan", name="priceplan_unique_date"),
        migrations.RemoveField(model_name="priceplan", name="effective_from"),
        migrations.RenameField(model_name="priceplan", old_name="effective_at", new_name="effective_from"),
        migrations.AlterField(
            model_name="priceplan",
            name="effective_from",
            field=models.DateTimeField(help_text="从该整点（北京时间）起生效", verbose_name="生效时间"),
        ),
        migrations.AddConstraint(
            model_name="priceplan",
            constraint=models.UniqueConstraint(fields=("tenant", "effective_from"), name="priceplan_unique_start"),
        ),
    ]
