# Memory quota in MiB instead of whole GiB: every ram_gib column becomes ram_mib, its values × 1024.

from django.db import migrations, models

MIB_PER_GIB = 1024

# (model, columns) holding memory amounts, after the rename.
COLUMNS = {
    "quota": ("limit_ram_mib", "used_ram_mib", "reserved_ram_mib"),
    "reservation": ("ram_mib",),
    "approvalrequest": ("ram_mib",),
    "autoapprovalrule": ("max_ram_mib",),
}


def _scale(apps, factor_up: bool):
    for model_name, columns in COLUMNS.items():
        model = apps.get_model("tenants", model_name)
        for column in columns:
            value = models.F(column) * MIB_PER_GIB if factor_up else models.F(column) / MIB_PER_GIB
            # NULL (no limit) stays NULL; integer division back rounds down (the way back loses nothing
            # but the part of a GiB that never existed in GiB columns).
            model.objects.filter(**{f"{column}__isnull": False}).update(**{column: value})


def to_mib(apps, schema_editor):
    _scale(apps, True)


def to_gib(apps, schema_editor):
    _scale(apps, False)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_request_partial_parent_approver_rule_disk_ips"),
    ]

    operations = [
        migrations.RenameField("quota", "limit_ram_gib", "limit_ram_mib"),
        migrations.RenameField("quota", "used_ram_gib", "used_ram_mib"),
        migrations.RenameField("quota", "reserved_ram_gib", "reserved_ram_mib"),
        migrations.RenameField("reservation", "ram_gib", "ram_mib"),
        migrations.RenameField("approvalrequest", "ram_gib", "ram_mib"),
        migrations.RenameField("autoapprovalrule", "max_ram_gib", "max_ram_mib"),
        migrations.AlterField(
            model_name="quota",
            name="limit_ram_mib",
            field=models.PositiveIntegerField(blank=True, default=None, null=True, verbose_name="limit_ram_mib"),
        ),
        migrations.AlterField(
            model_name="quota",
            name="used_ram_mib",
            field=models.PositiveIntegerField(default=0, verbose_name="used_ram_mib"),
        ),
        migrations.AlterField(
            model_name="quota",
            name="reserved_ram_mib",
            field=models.PositiveIntegerField(default=0, verbose_name="reserved_ram_mib"),
        ),
        migrations.AlterField(
            model_name="reservation",
            name="ram_mib",
            field=models.PositiveIntegerField(default=0, verbose_name="ram_mib"),
        ),
        migrations.AlterField(
            model_name="approvalrequest",
            name="ram_mib",
            field=models.PositiveIntegerField(default=0, verbose_name="ram_mib"),
        ),
        migrations.AlterField(
            model_name="autoapprovalrule",
            name="max_ram_mib",
            field=models.PositiveIntegerField(default=0, verbose_name="最多内存 (MiB)"),
        ),
        migrations.RunPython(to_mib, to_gib),
    ]
