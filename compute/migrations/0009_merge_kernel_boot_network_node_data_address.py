from django.db import migrations


class Migration(migrations.Migration):
    """Joins two lines of work made side by side: direct kernel boot and network nodes, and the hosts' data address."""

    dependencies = [
        ("compute", "0008_host_network_node"),
        ("compute", "0007_host_data_address"),
    ]

    operations = []
