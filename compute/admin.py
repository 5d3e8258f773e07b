"""Django admin for compute's inventory: sites, clusters, hosts, storage pools, GPU profiles.

Endpoints are registered through compute's own pages or `endpoint_add` (they are checked
first); here they are read-only, and their credentials never appear.
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from common.admin import ReadOnlyAdmin
from compute.models import Cluster, Desktop, Endpoint, Flavor, GpuProfile, Host, Image, ImageVersion, Site, StoragePool


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "queue"]


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["name", "site", "kind", "policy", "cpu_overcommit", "memory_overcommit"]
    list_filter = ["kind", "policy"]


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "url", "site", "cluster", "status", "max_concurrency", "is_active"]
    list_filter = ["kind", "status", "is_active"]
    exclude = ["password_encrypted"]
    readonly_fields = ["name", "kind", "url", "username", "status", "last_error", "last_checked_at"]

    def has_add_permission(self, request):
        return False


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["name", "endpoint", "cpus", "memory_mib", "free_memory_mib", "is_active"]


@admin.register(StoragePool)
class StoragePoolAdmin(admin.ModelAdmin):
    list_display = ["name", "endpoint", "kind", "replicas", "is_default"]


@admin.register(GpuProfile)
class GpuProfileAdmin(admin.ModelAdmin):
    list_display = ["name", "mode", "vgpu_type", "gpus"]


@admin.register(Flavor)
class FlavorAdmin(admin.ModelAdmin):
    list_display = ["name", "vcpus", "memory_mib", "disk_gib", "gpu_profile", "tenant", "is_active"]


class ImageVersionInline(admin.TabularInline):
    model = ImageVersion
    extra = 0
    readonly_fields = ["version", "endpoint", "pool", "volume", "template", "format", "size_bytes", "status"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["name", "visibility", "tenant", "course", "kernel_path", "is_active"]
    fieldsets = [
        (None, {"fields": ["name", "os_type", "description", "visibility", "tenant", "course", "is_active"]}),
        (_("直接内核启动"), {"fields": ["kernel_path", "initrd_path", "kernel_cmdline"]}),
    ]
    inlines = [ImageVersionInline]


@admin.register(Desktop)
class DesktopAdmin(ReadOnlyAdmin):
    """Read-only: desktops change through the services (state machine, quotas, audit)."""

    list_display = ["name", "vm_name", "tenant", "owner", "endpoint", "state", "power_state"]
    list_filter = ["state", "endpoint"]
    search_fields = ["name", "vm_name", "owner__username"]
