from django.db import migrations, models


class Migration(migrations.Migration):
    """The lists' order as an index: a page's keys are read from it, not sorted (common/paging.py)."""

    dependencies = [("compute", "0005_hosts_inventory")]

    operations = [
        migrations.AddIndex(
            model_name="desktop",
            index=models.Index(fields=["created_at", "id"], name="desktop_list_order"),
        ),
    ]
