from django.db import migrations, models

import compute.models.images


class Migration(migrations.Migration):
    """Images that boot a kernel directly: kernel, initrd and command line, files on the hosts."""

    dependencies = [("compute", "0006_desktop_list_order")]

    operations = [
        migrations.AddField(
            model_name="image",
            name="initrd_path",
            field=models.CharField(
                blank=True,
                max_length=500,
                validators=[compute.models.images.validate_host_path],
                verbose_name="initrd 路径",
            ),
        ),
        migrations.AddField(
            model_name="image",
            name="kernel_cmdline",
            field=models.CharField(blank=True, max_length=1000, verbose_name="内核命令行"),
        ),
        migrations.AddField(
            model_name="image",
            name="kernel_path",
            field=models.CharField(
                blank=True,
                help_text="主机上的绝对路径；填写后桌面直接从此内核启动",
                max_length=500,
                validators=[compute.models.images.validate_host_path],
                verbose_name="内核路径",
            ),
        ),
    ]
