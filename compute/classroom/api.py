"""REST API of the classroom: course desktop pools (``pools``) and the console ticket
(``POST /api/v1/desktops/{id}/console/``, CONTRACT.md). Thin: selectors scope, one service each."""

from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from common import limits
from common.api.serializers import FastReadMixin, UpdateSerializer
from compute.classroom import selectors, services
from compute.classroom.models import DesktopPool, Seat
from compute.classroom.services.schedule import MAX_DEADLINE_MINUTES, MAX_SCHEDULE_MINUTES
from compute.models import ImageVersion
from compute.selectors import desktop_list_for


class SeatSerializer(FastReadMixin, serializers.ModelSerializer):
    student = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)  # null: a spare seat
    desktop_state = serializers.CharField(source="desktop.state", default="", read_only=True)
    gpu = serializers.CharField(source="desktop.gpu_device", default="", read_only=True)

    class Meta:
        model = Seat
        fields = ["id", "student", "desktop", "desktop_state", "gpu", "state", "created_at"]


class PoolSerializer(FastReadMixin, serializers.ModelSerializer):
    course = serializers.SlugRelatedField(slug_field="code", read_only=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    flavor = serializers.SlugRelatedField(slug_field="name", read_only=True)
    image = serializers.SerializerMethodField()
    seats = serializers.IntegerField(source="seat_count", read_only=True)
    ready = serializers.IntegerField(source="ready_count", read_only=True)
    failed = serializers.IntegerField(source="failed_count", read_only=True)

    read_columns = {"image_name": "image_version__image__name", "image_number": "image_version__version"}

    class Meta:
        model = DesktopPool
        fields = [
            "id",
            "name",
            "course",
            "tenant",
            "image_version",
            "image",
            "flavor",
            "persistence",
            "leaver_disks",
            "lead_minutes",
            "shutdown_after_minutes",
            "shutdown_deadline_minutes",
            "state",
            "seats",
            "ready",
            "failed",
            "created_at",
        ]

    def get_image(self, pool) -> str:
        name = self.joined(pool, "image_name")
        return str(pool.image_version) if name is None else ImageVersion.label(name, self.joined(pool, "image_number"))


class PoolUpdateSerializer(UpdateSerializer):
    persistence = serializers.ChoiceField(choices=DesktopPool.Persistence.values, required=False)
    leaver_disks = serializers.ChoiceField(
        choices=DesktopPool.LeaverDisks.values,
        required=False,
        help_text="data disks of a student who leaves the seat: kept (detached) for them, or wiped and deleted",
    )
    lead_minutes = serializers.IntegerField(min_value=0, max_value=MAX_SCHEDULE_MINUTES, required=False)
    shutdown_after_minutes = serializers.IntegerField(min_value=0, max_value=MAX_SCHEDULE_MINUTES, required=False)
    shutdown_deadline_minutes = serializers.IntegerField(
        min_value=0,
        max_value=MAX_DEADLINE_MINUTES,
        required=False,
        help_text="minutes after a class at which desktops are powered off even with a student connected",
    )


class SkipSerializer(serializers.Serializer):
    date = serializers.DateField(validators=[limits.validate_year])
    class_time = serializers.IntegerField(required=False, allow_null=True, help_text="empty: the whole day")
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class SeatAssignSerializer(serializers.Serializer):
    student = serializers.CharField(
        max_length=150, help_text="username of a student on the course's roster who holds no seat of the pool"
    )


_COUNT = inline_serializer("PoolActionResult", {"changed": serializers.IntegerField()})


@extend_schema(tags=["pools"])
class PoolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Course desktop pools the caller teaches or administers. Pools are created by approving a
    course-desktop request (``requests``)."""

    serializer_class = PoolSerializer
    search_fields = ["name", "course__code"]
    filterset_fields = ["state", "persistence"]

    def get_queryset(self):
        # A list's page is read as its serializer's read_queryset says (common/api/pagination.py).
        return selectors.pool_list_for(self.request.user)

    def get_serializer_class(self):
        return SeatSerializer if self.action == "seats" else PoolSerializer

    def _pool(self) -> DesktopPool:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    @extend_schema(request=PoolUpdateSerializer, responses={200: PoolSerializer})
    def partial_update(self, request, pk=None):
        pool = self._pool()
        data = PoolUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.pool_settings_update(actor=request.user, pool=pool, **data.validated_data)
        return Response(PoolSerializer(self._pool()).data)

    @extend_schema(responses=SeatSerializer(many=True))
    @action(detail=True, methods=["get"])
    def seats(self, request, pk=None):
        pool = self._pool()
        items = selectors.seat_list_for(request.user, pool=pool)
        page = self.paginate_queryset(items)
        return self.get_paginated_response(SeatSerializer(page, many=True).data)

    def _seat(self, pool: DesktopPool, seat_pk) -> Seat:
        return get_object_or_404(selectors.seat_list_for(self.request.user, pool=pool), pk=seat_pk)

    @extend_schema(
        request=SeatAssignSerializer,
        responses={200: SeatSerializer, 400: OpenApiResponse(), 404: OpenApiResponse(), 409: OpenApiResponse()},
        description="Give a spare seat to a student on the roster without one: its desktop is reset to the "
        "golden image and handed to them. 409 `seat_not_spare`, `student_seated`, `seat_busy`; "
        "400 `student_not_on_roster`.",
    )
    @action(detail=True, methods=["post"], url_path=r"seats/(?P<seat_pk>[0-9]+)/assign")
    def seat_assign(self, request, pk=None, seat_pk=None):
        pool = self._pool()
        seat = self._seat(pool, seat_pk)
        data = SeatAssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        student = services.roster_student(pool, username=data.validated_data["student"])
        seat = services.seat_assign(actor=request.user, seat=seat, student=student)
        return Response(SeatSerializer(self._seat(pool, seat.pk)).data)

    @extend_schema(
        request=None,
        responses={200: SeatSerializer, 404: OpenApiResponse(), 409: OpenApiResponse()},
        description="Take a student's seat back: it becomes a spare seat, its desktop reset to the golden "
        "image and the student's data disks kept for them or wiped per the pool's `leaver_disks`. "
        "409 `seat_spare`, `seat_busy`.",
    )
    @action(detail=True, methods=["post"], url_path=r"seats/(?P<seat_pk>[0-9]+)/take-back")
    def seat_take_back(self, request, pk=None, seat_pk=None):
        pool = self._pool()
        seat = services.seat_take_back(actor=request.user, seat=self._seat(pool, seat_pk))
        return Response(SeatSerializer(self._seat(pool, seat.pk)).data)

    def _count(self, changed: int):
        return Response({"changed": changed}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: _COUNT, 409: OpenApiResponse()})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._count(services.pool_power(actor=request.user, pool=self._pool(), verb="start"))

    @extend_schema(request=None, responses={202: _COUNT})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        return self._count(services.pool_power(actor=request.user, pool=self._pool(), verb="stop"))

    @extend_schema(request=None, responses={202: _COUNT, 409: OpenApiResponse()})
    @action(detail=True, methods=["post"])
    def reset(self, request, pk=None):
        return self._count(services.pool_reset(actor=request.user, pool=self._pool()))

    @extend_schema(request=None, responses={202: _COUNT})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._count(services.pool_retry_failed(actor=request.user, pool=self._pool()))

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer(
                "RosterSync", {k: serializers.IntegerField() for k in services.SyncResult().as_dict()}
            )
        },
    )
    @action(detail=True, methods=["post"], url_path="sync-roster")
    def sync_roster(self, request, pk=None):
        result = services.pool_sync_roster(actor=request.user, pool=self._pool())
        return Response(result.as_dict(), status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=SkipSerializer, responses={201: SkipSerializer})
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None):
        pool = self._pool()  # another tenant's pool is a 404 before the body is looked at
        data = SkipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        services.schedule_exception_add(
            actor=request.user,
            pool=pool,
            date=values["date"],
            class_time_id=values.get("class_time"),
            reason=values.get("reason", ""),
        )
        return Response(SkipSerializer(values).data, status=status.HTTP_201_CREATED)


class ConsoleTicketSerializer(serializers.Serializer):
    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()
    websocket_url = serializers.CharField()
    protocol = serializers.ChoiceField(
        choices=["rfb", "webmks"],
        help_text="rfb: the portal's proxy relays VNC; webmks: a vCenter host's WebMKS endpoint (a VMware client)",
    )
    page_url = serializers.CharField()


class DesktopConsoleView(APIView):
    """A single-use console ticket (60 s) for a running desktop the caller may open."""

    @extend_schema(
        request=None,
        responses={201: ConsoleTicketSerializer, 404: OpenApiResponse(), 409: OpenApiResponse()},
        tags=["desktops"],
    )
    def post(self, request, pk):
        desktop = get_object_or_404(desktop_list_for(request.user).select_related("endpoint__site"), pk=pk)
        grant = services.console_ticket_issue(
            actor=request.user, desktop=desktop, client=request.META.get("REMOTE_ADDR", "")
        )
        body = {
            "ticket": grant.ticket,
            "expires_at": grant.expires_at,
            "websocket_url": grant.websocket_url,
            "protocol": grant.protocol,
            "page_url": reverse("classroom:console", args=[desktop.pk]),
        }
        return Response(ConsoleTicketSerializer(body).data, status=status.HTTP_201_CREATED)


def register(router) -> None:
    """Add this app's viewsets to the /api/v1/ router."""
    router.register("pools", PoolViewSet, basename="pool")


urlpatterns = [
    path("desktops/<int:pk>/console/", DesktopConsoleView.as_view(), name="desktop-console"),
]
