"""/api/v1/ for migration and maintenance (system admin): a desktop's migrations (start, list, cancel),
a host's maintenance with its evacuation, and the host's events timeline."""

from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import Conflict, NotFound
from compute import selectors, services
from compute.errors import ComputeError
from compute.models import DesktopMigration, Host


class MigrationSerializer(serializers.ModelSerializer):
    desktop = serializers.IntegerField(source="desktop_id", read_only=True)
    source = serializers.CharField(source="source_name", read_only=True)
    target = serializers.CharField(source="target_name", read_only=True)
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = DesktopMigration
        fields = [
            "id",
            "desktop",
            "source",
            "target",
            "kind",
            "copy_storage",
            "reason",
            "state",
            "percent",
            "data_total",
            "data_remaining",
            "downtime_ms",
            "duration_ms",
            "cancel_requested",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class MigrateRequestSerializer(serializers.Serializer):
    host = serializers.CharField(required=False, allow_blank=True, help_text="target host name; empty: placement's")


class MigrationListSerializer(serializers.Serializer):
    candidates = serializers.ListField(child=serializers.CharField(), help_text="hosts it may move to, best first")
    migrations = MigrationSerializer(many=True)


class MaintenanceRequestSerializer(serializers.Serializer):
    on = serializers.BooleanField()


class EvacuationSerializer(serializers.Serializer):
    host = serializers.CharField()
    state = serializers.CharField()
    counts = serializers.DictField(child=serializers.IntegerField())
    done = serializers.BooleanField()
    left = serializers.IntegerField()
    migrations = MigrationSerializer(many=True)


class HostEventSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    what = serializers.CharField()
    detail = serializers.CharField()
    ok = serializers.BooleanField()


def _desktop(request, pk):
    return get_object_or_404(selectors.desktop_list_for(request.user).select_related("host", "endpoint"), pk=pk)


def _host(request, pk) -> Host:
    try:
        return selectors.host_get_for(request.user, pk=pk)
    except Host.DoesNotExist as exc:
        raise NotFound() from exc  # a host is the system admin's: nobody else learns it exists


class DesktopMigrateView(APIView):
    """GET: where the desktop could go and its latest migrations; POST: migrate it (system admin)."""

    @extend_schema(responses={200: MigrationListSerializer}, tags=["desktops"])
    def get(self, request, pk):
        desktop = _desktop(request, pk)
        services.migration_rules_check(actor=request.user)
        body = {
            "candidates": [h.name for h in services.migration_candidates(desktop)] if desktop.is_live else [],
            "migrations": selectors.desktop_migrations(desktop),
        }
        return Response(MigrationListSerializer(body).data)

    @extend_schema(
        request=MigrateRequestSerializer,
        responses={202: MigrationSerializer, 400: OpenApiResponse(), 404: OpenApiResponse(), 409: OpenApiResponse()},
        tags=["desktops"],
    )
    def post(self, request, pk):
        desktop = _desktop(request, pk)
        data = MigrateRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        host = None
        if data.validated_data.get("host"):
            host = Host.objects.filter(endpoint__name=data.validated_data["host"]).first()
            if host is None:
                raise NotFound(code=ComputeError.HOST_NOT_FOUND)
        migration = services.desktop_migrate(actor=request.user, desktop=desktop, host=host)
        return Response(MigrationSerializer(migration).data, status=status.HTTP_202_ACCEPTED)


class MigrationCancelView(APIView):
    """Cancel the desktop's migration in progress: it stays on its source host."""

    @extend_schema(request=None, responses={202: MigrationSerializer, 409: OpenApiResponse()}, tags=["desktops"])
    def post(self, request, pk):
        desktop = _desktop(request, pk)
        services.migration_rules_check(actor=request.user)
        running = desktop.migrations.exclude(state__in=DesktopMigration.FINISHED).order_by("-pk").first()
        if running is None:
            raise Conflict(_("该桌面没有进行中的迁移。"), code=ComputeError.MIGRATION_NOT_RUNNING)
        migration = services.migration_cancel(actor=request.user, migration=running)
        return Response(MigrationSerializer(migration).data, status=status.HTTP_202_ACCEPTED)


def _evacuation(host: Host) -> dict:
    status_ = services.evacuation_status(host) if host.state == Host.State.MAINTENANCE else None
    return {
        "host": host.name,
        "state": host.state,
        "counts": status_["counts"] if status_ else {},
        "done": status_["done"] if status_ else True,
        "left": status_["left"] if status_ else 0,
        "migrations": status_["migrations"] if status_ else [],
    }


class HostMaintenanceView(APIView):
    """GET: the host's state and its evacuation; POST ``{"on": true}``: maintenance (its desktops move away)."""

    @extend_schema(responses={200: EvacuationSerializer, 404: OpenApiResponse()}, tags=["hosts"])
    def get(self, request, pk):
        return Response(EvacuationSerializer(_evacuation(_host(request, pk))).data)

    @extend_schema(
        request=MaintenanceRequestSerializer,
        responses={202: EvacuationSerializer, 404: OpenApiResponse()},
        tags=["hosts"],
    )
    def post(self, request, pk):
        host = _host(request, pk)
        data = MaintenanceRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        host = services.host_maintenance(actor=request.user, name=host.endpoint.name, on=data.validated_data["on"])
        return Response(EvacuationSerializer(_evacuation(host)).data, status=status.HTTP_202_ACCEPTED)


class HostEventsView(APIView):
    """The host's timeline, newest first."""

    @extend_schema(responses={200: HostEventSerializer(many=True), 404: OpenApiResponse()}, tags=["hosts"])
    def get(self, request, pk):
        return Response(HostEventSerializer(selectors.host_events(_host(request, pk)), many=True).data)


def register(router) -> None:
    """Nothing for the router: these are actions of desktops and hosts (``urlpatterns``)."""


urlpatterns = [
    path("desktops/<int:pk>/migrate/", DesktopMigrateView.as_view(), name="desktop-migrate"),
    path("desktops/<int:pk>/migrate/cancel/", MigrationCancelView.as_view(), name="desktop-migrate-cancel"),
    path("hosts/<int:pk>/maintenance/", HostMaintenanceView.as_view(), name="host-maintenance"),
    path("hosts/<int:pk>/events/", HostEventsView.as_view(), name="host-events"),
]
