from django.db import migrations


class Migration(migrations.Migration):
    """Joins the migration/DRS line (shared storage, migrations, DRS) with the hosts' network line."""

    dependencies = [
        ("compute", "0009_cluster_drs_policy"),
        ("compute", "0009_merge_kernel_boot_network_node_data_address"),
    ]

    operations = []
