"""Desktops (create, power and lifecycle actions, console), their snapshots and data disks.

A desktop's children live under it: /desktops/{id}/snapshots/{pk}/ and /desktops/{id}/volumes/{pk}/;
/volumes/ lists every data disk the caller may see, attached or detached.
"""

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from common import limits
from common.api.serializers import ChoiceLabelField, FastReadMixin
from compute import selectors, services
from compute.models import Desktop, ImageVersion, Snapshot, Volume
from tenants.models import Course
from tenants.selectors import tenant_list_for


class DesktopNicSerializer(serializers.Serializer):
    mac = serializers.CharField()
    ip = serializers.CharField()
    network = serializers.CharField()
    network_id = serializers.IntegerField()
    cidr = serializers.CharField()
    gateway = serializers.CharField(allow_blank=True)
    security_group = serializers.CharField(allow_blank=True)


class DesktopListSerializer(serializers.ListSerializer):
    """Reads the NICs of every desktop of the page in one query, so a page of 30 costs what a page of 3 does."""

    def to_representation(self, data):
        items = list(data.all() if hasattr(data, "all") else data)
        self.context["desktop_nics"] = selectors.desktop_nics([d.pk for d in items])
        return super().to_representation(items)


class DesktopSerializer(FastReadMixin, serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )  # null: an imported VM nobody owns yet
    endpoint = serializers.SlugRelatedField(slug_field="name", read_only=True)
    flavor = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)  # null: an imported VM
    image = serializers.SerializerMethodField()
    nics = serializers.SerializerMethodField()
    state_display = ChoiceLabelField(Desktop.State.choices, source="state")

    read_columns = {"image_name": "image_version__image__name", "image_number": "image_version__version"}

    class Meta:
        model = Desktop
        fields = [
            "id",
            "name",
            "vm_name",
            "tenant",
            "owner",
            "course",
            "image_version",
            "image",
            "flavor",
            "endpoint",
            "vcpus",
            "memory_mib",
            "disk_gib",
            "gpus",
            "state",
            "state_display",
            "power_state",
            "error_reason",
            "last_error",
            "task_id",
            "vnc_port",
            "mac",
            "guest_ip",
            "nics",
            "imported",
            "created_at",
            "updated_at",
        ]
        list_serializer_class = DesktopListSerializer

    def get_image(self, obj) -> str:
        name = self.joined(obj, "image_name")
        if name is not None:
            return ImageVersion.label(name, self.joined(obj, "image_number"))
        return str(obj.image_version) if obj.image_version_id else ""

    @extend_schema_field(DesktopNicSerializer(many=True))
    def get_nics(self, obj) -> list[dict]:
        prefetched = self.context.get("desktop_nics")
        nics = prefetched[obj.pk] if prefetched is not None and obj.pk in prefetched else None
        if nics is None:
            nics = selectors.desktop_nics([obj.pk])[obj.pk]
        # One NIC serializer for the whole page, not a new one per row.
        child = self.__dict__.get("_nic_serializer")
        if child is None:
            child = self.__dict__["_nic_serializer"] = DesktopNicSerializer()
        return [child.to_representation(nic) for nic in nics]


class DesktopCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, default="")
    tenant = serializers.SlugField(required=False, help_text="tenant slug; default: the caller's first tenant")
    image_version = serializers.IntegerField()
    flavor = serializers.IntegerField()
    course = serializers.IntegerField(required=False)
    owner = serializers.CharField(required=False, help_text="username; default: the caller")


class ResizeSerializer(serializers.Serializer):
    flavor = serializers.IntegerField(help_text="id of the flavor to apply (the desktop must be stopped)")


class CloneSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, default="")


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["id", "name", "description", "state", "last_error", "created_at"]
        read_only_fields = ["id", "state", "last_error", "created_at"]


class VolumeSerializer(FastReadMixin, serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    endpoint = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = Volume
        fields = [
            "id",
            "name",
            "size_gib",
            "desktop",
            "tenant",
            "endpoint",
            "target",
            "state",
            "last_error",
            "created_at",
        ]
        read_only_fields = ["id", "desktop", "tenant", "endpoint", "target", "state", "last_error", "created_at"]


class VolumeAttachSerializer(serializers.Serializer):
    """A new disk (``size_gib``, optional ``name``), or a detached disk of the tenant (``volume``)."""

    name = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
    size_gib = serializers.IntegerField(min_value=1, max_value=limits.VOLUME_GIB_MAX, required=False)
    volume = serializers.IntegerField(required=False, help_text="id of a detached data disk to attach")

    def validate(self, attrs):
        if ("size_gib" in attrs) == ("volume" in attrs):
            raise serializers.ValidationError(_("请给出新数据盘的容量，或要挂载的已有数据盘，二者选一。"))
        return attrs


_ACTION_RESPONSE = {202: DesktopSerializer, 404: OpenApiResponse(description="not found"), 409: OpenApiResponse()}


class DesktopFilter(filters.FilterSet):
    state = filters.ChoiceFilter(choices=Desktop.State.choices)
    tenant = filters.CharFilter(field_name="tenant__slug")
    owner = filters.CharFilter(field_name="owner__username")
    course = filters.NumberFilter(field_name="course_id")
    endpoint = filters.CharFilter(field_name="endpoint__name")

    class Meta:
        model = Desktop
        fields = ["state", "tenant", "owner", "course", "endpoint"]


@extend_schema_view(
    create=extend_schema(request=DesktopCreateSerializer, responses={202: DesktopSerializer}),
    destroy=extend_schema(responses={202: DesktopSerializer}),
)
class DesktopViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Desktops the caller may see. Actions answer 202: the hypervisor work runs in a task."""

    serializer_class = DesktopSerializer
    filterset_class = DesktopFilter
    search_fields = ["name", "vm_name", "owner__username"]
    ordering_fields = ["created_at", "name", "state"]

    def get_queryset(self):
        # A list's page is read as DesktopSerializer.read_queryset says (common/api/pagination.py).
        return selectors.desktop_list_for(self.request.user).order_by("-created_at", "-id")

    def _desktop(self) -> Desktop:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def _accepted(self, desktop):
        desktop.refresh_from_db()
        return Response(DesktopSerializer(desktop).data, status=status.HTTP_202_ACCEPTED)

    def create(self, request):
        data = DesktopCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        user = request.user
        tenants = tenant_list_for(user)
        if values.get("tenant"):
            tenant = tenants.filter(slug=values["tenant"]).first()
        else:
            tenant = next((m.tenant for m in selectors.memberships_of(user)), None)
        if tenant is None:
            raise NotFound(_("租户不存在。"))
        version = selectors.image_version_list_for(user).filter(pk=values["image_version"]).first()
        flavor = selectors.flavor_list_for(user).filter(pk=values["flavor"]).first()
        if version is None:
            raise serializers.ValidationError({"image_version": [_("未知镜像。")]})
        if flavor is None:
            raise serializers.ValidationError({"flavor": [_("未知规格。")]})
        course = None
        if values.get("course"):
            course = Course.objects.filter(pk=values["course"], tenant=tenant).first()
            if course is None:
                raise serializers.ValidationError({"course": [_("未知课程。")]})
        owner = user
        if values.get("owner"):
            from tenants.models import User

            owner = User.objects.filter(username=values["owner"], memberships__tenant=tenant).first()
            if owner is None:
                raise serializers.ValidationError({"owner": [_("该租户没有这个用户。")]})
        desktop = services.desktop_create(
            actor=user,
            tenant=tenant,
            image_version=version,
            flavor=flavor,
            owner=owner,
            course=course,
            name=values["name"],
        )
        return self._accepted(desktop)

    def destroy(self, request, pk=None):
        return self._accepted(services.desktop_delete(actor=request.user, desktop=self._desktop()))

    @extend_schema(request=None, responses=_ACTION_RESPONSE)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._accepted(services.desktop_start(actor=request.user, desktop=self._desktop()))

    @extend_schema(request=None, responses=_ACTION_RESPONSE)
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        return self._accepted(services.desktop_stop(actor=request.user, desktop=self._desktop()))

    @extend_schema(request=None, responses=_ACTION_RESPONSE)
    @action(detail=True, methods=["post"])
    def reboot(self, request, pk=None):
        return self._accepted(services.desktop_reboot(actor=request.user, desktop=self._desktop()))

    @extend_schema(request=None, responses=_ACTION_RESPONSE)
    @action(detail=True, methods=["post"])
    def reset(self, request, pk=None):
        return self._accepted(services.desktop_reset(actor=request.user, desktop=self._desktop()))

    @extend_schema(request=None, responses=_ACTION_RESPONSE)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._accepted(services.desktop_retry(actor=request.user, desktop=self._desktop()))

    @extend_schema(request=ResizeSerializer, responses=_ACTION_RESPONSE)
    @action(detail=True, methods=["post"])
    def resize(self, request, pk=None):
        desktop = self._desktop()
        data = ResizeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        flavor = selectors.flavor_list_for(request.user).filter(pk=data.validated_data["flavor"]).first()
        if flavor is None:
            raise serializers.ValidationError({"flavor": [_("未知规格。")]})
        return self._accepted(services.desktop_resize(actor=request.user, desktop=desktop, flavor=flavor))

    @extend_schema(request=CloneSerializer, responses=_ACTION_RESPONSE)
    @action(detail=True, methods=["post"])
    def clone(self, request, pk=None):
        data = CloneSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        clone = services.desktop_clone(actor=request.user, desktop=self._desktop(), name=data.validated_data["name"])
        return self._accepted(clone)

    @extend_schema(methods=["get"], responses=SnapshotSerializer(many=True))
    @extend_schema(methods=["post"], request=SnapshotSerializer, responses={202: SnapshotSerializer})
    @action(detail=True, methods=["get", "post"], serializer_class=SnapshotSerializer, pagination_class=None)
    def snapshots(self, request, pk=None):
        desktop = self._desktop()
        if request.method == "GET":
            items = selectors.snapshot_list_for(request.user, desktop=desktop)
            return Response(SnapshotSerializer(items, many=True).data)
        data = SnapshotSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        snapshot = services.snapshot_create(
            actor=request.user,
            desktop=desktop,
            name=data.validated_data["name"],
            description=data.validated_data.get("description", ""),
        )
        return Response(SnapshotSerializer(snapshot).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(methods=["get"], responses=VolumeSerializer(many=True))
    @extend_schema(methods=["post"], request=VolumeAttachSerializer, responses={202: VolumeSerializer})
    @action(detail=True, methods=["get", "post"], serializer_class=VolumeSerializer, pagination_class=None)
    def volumes(self, request, pk=None):
        desktop = self._desktop()
        if request.method == "GET":
            return Response(VolumeSerializer(selectors.volume_list_for(request.user, desktop=desktop), many=True).data)
        data = VolumeAttachSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "volume" in values:
            volume = selectors.volume_all_for(request.user).filter(pk=values["volume"]).first()
            if volume is None:
                raise serializers.ValidationError({"volume": [_("数据盘不存在。")]})
            volume = services.volume_attach_existing(actor=request.user, desktop=desktop, volume=volume)
        else:
            volume = services.volume_attach(
                actor=request.user, desktop=desktop, size_gib=values["size_gib"], name=values["name"]
            )
        volume.refresh_from_db()
        return Response(VolumeSerializer(volume).data, status=status.HTTP_202_ACCEPTED)


class DesktopChildViewSet(viewsets.ViewSet):
    """/desktops/{desktop_pk}/snapshots/{pk}/ (delete, revert) and /volumes/{pk}/ (detach)."""

    def _desktop(self, request, desktop_pk) -> Desktop:
        return get_object_or_404(selectors.desktop_list_for(request.user), pk=desktop_pk)


class SnapshotViewSet(DesktopChildViewSet):
    serializer_class = SnapshotSerializer

    def _snapshot(self, request, desktop_pk, pk) -> Snapshot:
        desktop = self._desktop(request, desktop_pk)
        return get_object_or_404(selectors.snapshot_list_for(request.user, desktop=desktop), pk=pk)

    @extend_schema(responses={200: SnapshotSerializer})
    def retrieve(self, request, desktop_pk=None, pk=None):
        return Response(SnapshotSerializer(self._snapshot(request, desktop_pk, pk)).data)

    @extend_schema(responses={202: SnapshotSerializer})
    def destroy(self, request, desktop_pk=None, pk=None):
        snapshot = services.snapshot_delete(actor=request.user, snapshot=self._snapshot(request, desktop_pk, pk))
        return Response(SnapshotSerializer(snapshot).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: SnapshotSerializer})
    def revert(self, request, desktop_pk=None, pk=None):
        snapshot = services.snapshot_revert(actor=request.user, snapshot=self._snapshot(request, desktop_pk, pk))
        return Response(SnapshotSerializer(snapshot).data, status=status.HTTP_202_ACCEPTED)


class VolumeViewSet(DesktopChildViewSet):
    serializer_class = VolumeSerializer

    def _volume(self, request, desktop_pk, pk) -> Volume:
        desktop = self._desktop(request, desktop_pk)
        return get_object_or_404(selectors.volume_list_for(request.user, desktop=desktop), pk=pk)

    @extend_schema(responses={200: VolumeSerializer})
    def retrieve(self, request, desktop_pk=None, pk=None):
        return Response(VolumeSerializer(self._volume(request, desktop_pk, pk)).data)

    @extend_schema(responses={202: VolumeSerializer})
    def destroy(self, request, desktop_pk=None, pk=None):
        volume = services.volume_detach(actor=request.user, volume=self._volume(request, desktop_pk, pk))
        return Response(VolumeSerializer(volume).data, status=status.HTTP_202_ACCEPTED)


class VolumeFilter(filters.FilterSet):
    state = filters.ChoiceFilter(choices=Volume.State.choices)
    tenant = filters.CharFilter(field_name="tenant__slug")
    desktop = filters.NumberFilter(field_name="desktop_id")

    class Meta:
        model = Volume
        fields = ["state", "tenant", "desktop"]


@extend_schema_view(destroy=extend_schema(responses={202: VolumeSerializer, 409: OpenApiResponse()}))
class DataDiskViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Every data disk the caller may see, attached or detached; DELETE deletes a detached disk for good."""

    serializer_class = VolumeSerializer
    filterset_class = VolumeFilter
    search_fields = ["name"]
    ordering_fields = ["created_at", "name", "size_gib"]

    def get_queryset(self):
        return selectors.volume_all_for(self.request.user).order_by("-created_at", "-id")

    def destroy(self, request, pk=None):
        volume = services.volume_delete(actor=request.user, volume=self.get_object())
        return Response(VolumeSerializer(volume).data, status=status.HTTP_202_ACCEPTED)
