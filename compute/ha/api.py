"""HA in the API (system admin): ``/api/v1/ha-clusters/`` (a cluster's HA settings: read, change) and
``/api/v1/ha-hosts/`` (hosts' HA state and BMC, ``POST .../{id}/clear/``, ``POST .../{id}/bmc/``) and
``/api/v1/desktop-ha/{id}/`` (a desktop's HA flag, for whoever manages the desktop)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from compute import selectors as compute_selectors
from compute.ha import selectors, services
from compute.models import Cluster, ClusterHa, Host


class HaClusterSerializer(serializers.Serializer):
    cluster = serializers.IntegerField(source="pk", read_only=True)
    name = serializers.CharField(read_only=True)
    site = serializers.CharField(source="site.slug", read_only=True)
    enabled = serializers.SerializerMethodField()
    detection_seconds = serializers.SerializerMethodField()
    fencing = serializers.SerializerMethodField()
    shared_storage = serializers.SerializerMethodField()

    def get_enabled(self, cluster) -> bool:
        return selectors.ha_of(cluster).enabled

    def get_detection_seconds(self, cluster) -> int:
        return selectors.ha_of(cluster).detection

    def get_fencing(self, cluster) -> str:
        return selectors.ha_of(cluster).fencing

    def get_shared_storage(self, cluster) -> bool:
        return selectors.shared_storage(cluster)


class HaSettingsInput(serializers.Serializer):
    enabled = serializers.BooleanField()
    detection_seconds = serializers.IntegerField(required=False, allow_null=True, default=None)
    fencing = serializers.ChoiceField(choices=ClusterHa.Fencing.choices, default=ClusterHa.Fencing.IPMI)


class HaClusterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every cluster's HA settings; ``PUT`` changes them (system admin; anyone else sees none: 404)."""

    serializer_class = HaClusterSerializer

    def get_queryset(self):
        return selectors.ha_clusters_for(self.request.user)

    @extend_schema(request=HaSettingsInput, responses={200: HaClusterSerializer})
    def update(self, request, pk=None):
        cluster: Cluster = self.get_object()
        data = HaSettingsInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.ha_settings_update(actor=request.user, cluster=cluster, **data.validated_data)
        return Response(HaClusterSerializer(get_object_or_404(self.get_queryset(), pk=cluster.pk)).data)


class HaHostSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="endpoint.cluster.site.slug", read_only=True)
    cluster = serializers.CharField(source="endpoint.cluster.name", read_only=True)

    class Meta:
        model = Host
        fields = [
            "id",
            "name",
            "site",
            "cluster",
            "address",
            "ha_state",
            "ha_since",
            "ha_reason",
            "heartbeat_at",
            "probed_at",
            "bmc_address",
            "bmc_port",
            "bmc_username",
        ]
        read_only_fields = fields


class BmcInput(serializers.Serializer):
    address = serializers.CharField(max_length=255)
    port = serializers.IntegerField(default=623)
    username = serializers.CharField(max_length=16)
    password = serializers.CharField(required=False, allow_blank=True, default="", write_only=True)


class HaHostViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Compute nodes as HA sees them; ``clear`` puts a fenced host back into service, ``bmc`` sets its BMC."""

    serializer_class = HaHostSerializer

    def get_queryset(self):
        return selectors.ha_hosts_for(self.request.user)

    @extend_schema(request=None, responses={200: HaHostSerializer})
    @action(detail=True, methods=["post"])
    def clear(self, request, pk=None):
        host = services.host_ha_clear(actor=request.user, host=self.get_object())
        return Response(HaHostSerializer(self.get_queryset().get(pk=host.pk)).data)

    @extend_schema(request=BmcInput, responses={200: HaHostSerializer})
    @action(detail=True, methods=["post"])
    def bmc(self, request, pk=None):
        data = BmcInput(data=request.data)
        data.is_valid(raise_exception=True)
        host = services.host_bmc_set(actor=request.user, host=self.get_object(), **data.validated_data)
        return Response(HaHostSerializer(self.get_queryset().get(pk=host.pk)).data)


class DesktopHaSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    ha_enabled = serializers.BooleanField(allow_null=True)
    ha_effective = serializers.SerializerMethodField()

    def get_ha_effective(self, desktop) -> bool:
        from compute.ha.restart import cluster_has_shared_storage, ha_enabled

        return ha_enabled(desktop, shared=cluster_has_shared_storage(desktop.endpoint.cluster_id))


class DesktopHaViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A desktop's HA flag (``null``: its cluster's default, on with shared storage); ``PUT`` changes it."""

    serializer_class = DesktopHaSerializer

    def get_queryset(self):
        return compute_selectors.desktop_list_for(self.request.user).select_related("endpoint")

    @extend_schema(request=DesktopHaSerializer, responses={200: DesktopHaSerializer})
    def update(self, request, pk=None):
        data = DesktopHaSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        desktop = services.desktop_ha_set(
            actor=request.user, desktop=self.get_object(), enabled=data.validated_data["ha_enabled"]
        )
        return Response(DesktopHaSerializer(self.get_queryset().get(pk=desktop.pk)).data)


def register(router) -> None:
    router.register("ha-clusters", HaClusterViewSet, basename="ha-cluster")
    router.register("ha-hosts", HaHostViewSet, basename="ha-host")
    router.register("desktop-ha", DesktopHaViewSet, basename="desktop-ha")
