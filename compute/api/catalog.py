"""Images and flavors: everyone reads what they may see, system admins add."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from common import limits
from compute import selectors, services
from compute.api.access import require_system_admin
from compute.models import Flavor, Image, ImageVersion
from tenants.models import Course, Tenant


class ImageVersionSerializer(serializers.ModelSerializer):
    endpoint = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = ImageVersion
        fields = ["id", "version", "format", "size_bytes", "status", "endpoint", "created_at"]


class ImageSerializer(serializers.ModelSerializer):
    versions = ImageVersionSerializer(many=True, read_only=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = Image
        fields = [
            "id",
            "name",
            "os_type",
            "description",
            "visibility",
            "tenant",
            "course",
            "is_active",
            "kernel_path",
            "initrd_path",
            "kernel_cmdline",
            "versions",
        ]


class ImageCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    visibility = serializers.ChoiceField(choices=["platform", "tenant", "course"], default="platform")
    tenant = serializers.SlugRelatedField(slug_field="slug", queryset=Tenant.objects.all(), required=False)
    course = serializers.PrimaryKeyRelatedField(queryset=Course.objects.all(), required=False)
    os_type = serializers.CharField(max_length=50, required=False, default="")
    description = serializers.CharField(required=False, default="")
    # Direct kernel boot: files on the hosts; the service checks them (absolute paths, kernel first).
    kernel_path = serializers.CharField(max_length=500, required=False, default="")
    initrd_path = serializers.CharField(max_length=500, required=False, default="")
    kernel_cmdline = serializers.CharField(max_length=1000, required=False, default="")


class FlavorSerializer(serializers.ModelSerializer):
    gpu_profile = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = Flavor
        fields = ["id", "name", "vcpus", "memory_mib", "disk_gib", "gpu_profile", "is_active"]


class FlavorCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    vcpus = serializers.IntegerField(min_value=1, max_value=limits.VCPUS_MAX)
    memory_mib = serializers.IntegerField(min_value=limits.MEMORY_MIB_MIN, max_value=limits.MEMORY_MIB_MAX)
    disk_gib = serializers.IntegerField(min_value=1, max_value=limits.DISK_GIB_MAX)


@extend_schema_view(
    list=extend_schema(summary="List images visible to the caller"),
    create=extend_schema(request=ImageCreateSerializer, responses={201: ImageSerializer}),
)
class ImageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    serializer_class = ImageSerializer
    search_fields = ["name", "os_type"]
    filterset_fields = ["visibility", "os_type"]
    ordering_fields = ["name", "id"]

    def get_queryset(self):
        return selectors.image_list_for(self.request.user).select_related("tenant").order_by("name", "id")

    def create(self, request):
        require_system_admin(request.user)
        data = ImageCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        image = services.image_create(actor=request.user, **data.validated_data)
        return Response(ImageSerializer(image).data, status=status.HTTP_201_CREATED)


@extend_schema_view(create=extend_schema(request=FlavorCreateSerializer, responses={201: FlavorSerializer}))
class FlavorViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    serializer_class = FlavorSerializer
    search_fields = ["name"]
    filterset_fields = ["vcpus", "is_active"]
    ordering_fields = ["vcpus", "memory_mib", "name"]

    def get_queryset(self):
        return selectors.flavor_list_for(self.request.user).order_by("vcpus", "memory_mib", "id")

    def create(self, request):
        require_system_admin(request.user)
        data = FlavorCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        flavor = services.flavor_create(actor=request.user, **data.validated_data)
        return Response(FlavorSerializer(flavor).data, status=status.HTTP_201_CREATED)
