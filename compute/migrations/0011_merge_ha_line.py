from django.db import migrations


class Migration(migrations.Migration):
    """Joins HA (settings, incidents, the hosts' BMC) with the hosts' network and migration lines."""

    dependencies = [
        ("compute", "0010_merge_migration_line"),
        ("compute", "0007_ha_settings_incidents_host_bmc"),
    ]

    operations = []
