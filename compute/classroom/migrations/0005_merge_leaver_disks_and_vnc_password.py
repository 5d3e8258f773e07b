from django.db import migrations


class Migration(migrations.Migration):
    """Two branches of work met here: the pool's leaver-disk setting and the console's VNC password."""

    dependencies = [
        ("classroom", "0004_console_vnc_password"),
        ("classroom", "0004_pool_leaver_disks"),
    ]

    operations = []
