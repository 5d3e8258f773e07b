from django.db import migrations, models


class Migration(migrations.Migration):
    """A host's data (tunnel) address: networks spanning hosts run their VXLAN between these."""

    dependencies = [("compute", "0006_desktop_list_order")]

    operations = [
        migrations.AddField(
            model_name="host",
            name="data_address",
            field=models.GenericIPAddressField(
                blank=True, null=True, protocol="IPv4", unique=True, verbose_name="数据地址"
            ),
        ),
    ]
