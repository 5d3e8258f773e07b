"""Viewsets of the tenants API: tenants, memberships, courses (roster, import, class times), quotas, requests.

Thin views: querysets come from tenants.selectors (another tenant's object is a 404), every
write goes through one service, and a service's refusal becomes {"code", "message", "detail"}.
"""

from django.db.models import Count, Prefetch
from django.utils.translation import gettext as _
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from common.api.parsers import StrictJSONParser
from common.api.serializers import ReadWriteSerializers
from tenants import selectors, services
from tenants.api.serializers import (
    ApproveSerializer,
    ClassTimeSerializer,
    CourseCreateSerializer,
    CourseSerializer,
    CourseUpdateSerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    QuotaSerializer,
    QuotaUpdateSerializer,
    QuotaWriteSerializer,
    RejectSerializer,
    RequestCreateSerializer,
    RequestSerializer,
    RosterEntrySerializer,
    RosterImportResult,
    RosterImportSerializer,
    RosterPreview,
    TenantCreateSerializer,
    TenantSerializer,
    TenantUpdateSerializer,
)
from tenants.models import (
    RESOURCES,
    ApprovalRequest,
    ApprovalStep,
    Course,
    Membership,
    Quota,
    RosterEntry,
    Tenant,
    User,
)
from tenants.quotas import quota_key
from tenants.roster import roster_parse


def _visible_tenant(user, slug: str) -> Tenant:
    tenant = selectors.tenant_list_for(user).filter(slug=slug, is_active=True).first()
    if tenant is None:
        raise serializers.ValidationError({"tenant": [_("租户不存在，或您无权访问。")]})
    return tenant


def _user_named(username: str, field: str) -> User:
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise serializers.ValidationError({field: [_("用户不存在。")]})
    return user


def _visible_course(user, pk, *, field: str = "course") -> Course | None:
    if pk is None:
        return None
    course = selectors.course_list_for(user).filter(pk=pk).first()
    if course is None:
        raise serializers.ValidationError({field: [_("课程不存在，或您无权访问。")]})
    return course


def _amounts(data: dict) -> services.ResourceAmounts:
    return services.ResourceAmounts(**{name: data.get(name) or 0 for name in RESOURCES})


# --- tenants and memberships --------------------------------------------------------------------


class TenantFilter(filters.FilterSet):
    parent = filters.CharFilter(field_name="parent__slug")

    class Meta:
        model = Tenant
        fields = ["kind", "is_active", "parent"]


@extend_schema_view(
    create=extend_schema(request=TenantCreateSerializer, responses={201: TenantSerializer}),
    partial_update=extend_schema(request=TenantUpdateSerializer, responses=TenantSerializer),
)
class TenantViewSet(
    ReadWriteSerializers,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """The tenant tree: a parent's admin manages its children; the system admin manages all."""

    serializer_class = TenantSerializer
    write_serializers = {"create": TenantCreateSerializer, "partial_update": TenantUpdateSerializer}
    lookup_field = "slug"
    filterset_class = TenantFilter
    search_fields = ["slug", "name_zh", "name_en"]
    ordering_fields = ["path", "slug", "created_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return selectors.tenant_list_for(self.request.user).select_related("parent").order_by("path")

    def create(self, request, *args, **kwargs):
        data = self.validated()
        parent = _visible_tenant(request.user, data["parent"]) if data["parent"] else None
        tenant = services.tenant_create(
            actor=request.user,
            slug=data["slug"],
            name_zh=data["name_zh"],
            name_en=data["name_en"],
            kind=data["kind"],
            parent=parent,
        )
        return self.respond(tenant, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        tenant = self.get_object()
        data = self.validated()
        return self.respond(services.tenant_update(actor=request.user, tenant=tenant, **data))

    def update(self, request, *args, **kwargs):
        return self.partial_update(request, *args, **kwargs)


class MembershipFilter(filters.FilterSet):
    tenant = filters.CharFilter(field_name="tenant__slug")
    user = filters.CharFilter(field_name="user__username")

    class Meta:
        model = Membership
        fields = ["tenant", "user", "role"]


@extend_schema_view(create=extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer}))
class MembershipViewSet(
    ReadWriteSerializers,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Roles in tenants: granted and revoked by the tenant's admins or the security admin."""

    serializer_class = MembershipSerializer
    write_serializers = {"create": MembershipCreateSerializer}
    filterset_class = MembershipFilter
    search_fields = ["user__username", "user__display_name"]

    def get_queryset(self):
        return selectors.membership_list_for(self.request.user)

    def create(self, request, *args, **kwargs):
        data = self.validated()
        tenant = _visible_tenant(request.user, data["tenant"])
        user = _user_named(data["user"], "user")
        membership = services.membership_grant(actor=request.user, user=user, tenant=tenant, role=data["role"])
        return self.respond(membership, status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.membership_revoke(actor=request.user, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- courses --------------------------------------------------------------------------------------


class CourseFilter(filters.FilterSet):
    tenant = filters.CharFilter(field_name="tenant__slug")
    teacher = filters.CharFilter(field_name="teacher__username")
    active_on = filters.DateFilter(method="filter_active_on", label="active on date")

    class Meta:
        model = Course
        fields = ["tenant", "teacher", "code"]

    def filter_active_on(self, queryset, name, value):
        return queryset.filter(term_start__lte=value, term_end__gte=value)


@extend_schema_view(
    create=extend_schema(request=CourseCreateSerializer, responses={201: CourseSerializer}),
    update=extend_schema(request=CourseUpdateSerializer, responses=CourseSerializer),
    partial_update=extend_schema(request=CourseUpdateSerializer, responses=CourseSerializer),
    destroy=extend_schema(responses={204: None}),
)
class CourseViewSet(
    ReadWriteSerializers,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Courses: a teacher, a term, weekly class times and a roster of students."""

    serializer_class = CourseSerializer
    write_serializers = {
        "create": CourseCreateSerializer,
        "partial_update": CourseUpdateSerializer,
        "roster_import": RosterImportSerializer,
        "class_times": ClassTimeSerializer,
    }
    filterset_class = CourseFilter
    search_fields = ["code", "name", "teacher__display_name"]
    ordering_fields = ["code", "term_start", "created_at"]
    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]

    def get_queryset(self):
        return (
            selectors.course_list_for(self.request.user)
            .annotate(roster_size=Count("roster", distinct=True))
            .prefetch_related("class_times")
            .order_by("tenant__path", "code")
        )

    def create(self, request, *args, **kwargs):
        data = self.validated()
        tenant = _visible_tenant(request.user, data["tenant"])
        teacher = _user_named(data["teacher"], "teacher") if data.get("teacher") else request.user
        course = services.course_create(
            actor=request.user,
            tenant=tenant,
            code=data["code"],
            name=data["name"],
            teacher=teacher,
            term_start=data["term_start"],
            term_end=data["term_end"],
            class_times=[(s["weekday"], s["start_time"], s["end_time"]) for s in data["class_times"]],
        )
        return self.respond(self.get_queryset().get(pk=course.pk), status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        course = self.get_object()
        data = self.validated()
        if "teacher" in data:
            data["teacher"] = _user_named(data["teacher"], "teacher")
        services.course_update(actor=request.user, course=course, **data)
        return self.respond(self.get_queryset().get(pk=course.pk))

    def update(self, request, *args, **kwargs):
        return self.partial_update(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        services.course_delete(actor=request.user, course=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=RosterEntrySerializer(many=True))
    @action(detail=True, methods=["get"], serializer_class=RosterEntrySerializer)
    def roster(self, request, pk=None):
        course = self.get_object()
        entries = RosterEntry.objects.filter(course=course).select_related("user").order_by("student_number")
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(RosterEntrySerializer(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": RosterImportSerializer},
        responses={
            200: PolymorphicProxySerializer(
                component_name="RosterImportAnswer",
                serializers=[RosterImportResult, RosterPreview],
                resource_type_field_name=None,
            ),
            400: OpenApiResponse(description="bad rows, listed by line"),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="roster-import",
        parser_classes=[MultiPartParser, FormParser],
    )
    def roster_import(self, request, pk=None):
        """Import the roster from CSV/XLSX (student number, name). Any bad line: nothing is imported.

        The course's pool follows at once (``pool`` in the answer); ``dry_run`` only says what would change."""
        course = self.get_object()
        data = self.validated()
        upload = data["file"]
        rows = roster_parse(filename=upload.name, content=upload.read())
        if data["dry_run"]:
            preview = services.course_roster_preview(
                actor=request.user, course=course, rows=rows, replace=data["replace"]
            )
            return Response(preview)
        counts = services.course_roster_import(actor=request.user, course=course, rows=rows, replace=data["replace"])
        return Response(counts)

    @extend_schema(request=ClassTimeSerializer(many=True), responses=ClassTimeSerializer(many=True))
    @action(detail=True, methods=["put"], url_path="class-times", parser_classes=[StrictJSONParser])
    def class_times(self, request, pk=None):
        """Replace the weekly class times; overlapping slots are refused."""
        course = self.get_object()
        serializer = ClassTimeSerializer(data=request.data, many=True)
        serializer.is_valid(raise_exception=True)
        slots = [(s["weekday"], s["start_time"], s["end_time"]) for s in serializer.validated_data]
        created = services.course_class_times_set(actor=request.user, course=course, slots=slots)
        return Response(ClassTimeSerializer(created, many=True).data)


# --- quotas ---------------------------------------------------------------------------------------


class QuotaFilter(filters.FilterSet):
    tenant = filters.CharFilter(field_name="tenant__slug")
    user = filters.CharFilter(field_name="user__username")

    class Meta:
        model = Quota
        fields = ["scope", "tenant", "course", "user"]


@extend_schema_view(
    create=extend_schema(
        request=QuotaWriteSerializer,
        responses={200: QuotaSerializer, 201: QuotaSerializer},
        description="Set the limits of a tenant, a course or a user in a tenant (created if missing).",
    ),
    partial_update=extend_schema(request=QuotaUpdateSerializer, responses=QuotaSerializer),
)
class QuotaViewSet(
    ReadWriteSerializers,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Quotas with their limits, usage and reservations. A child's limit never exceeds its parent's."""

    serializer_class = QuotaSerializer
    write_serializers = {"create": QuotaWriteSerializer, "partial_update": QuotaUpdateSerializer}
    filterset_class = QuotaFilter
    ordering_fields = ["tenant__path", "scope", "updated_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return selectors.quota_list_for(self.request.user).order_by("tenant__path", "scope", "id")

    def create(self, request, *args, **kwargs):
        data = self.validated()
        tenant = _visible_tenant(request.user, data["tenant"])
        course = _visible_course(request.user, data["course"])
        user = _user_named(data["user"], "user") if data["user"] else None
        if course is not None and user is not None:
            raise serializers.ValidationError({"user": [_("课程配额和用户配额只能选一个。")]})
        existed = Quota.objects.filter(key=quota_key(tenant=tenant, course=course, user=user)[1]).exists()
        quota = services.quota_set(actor=request.user, tenant=tenant, course=course, user=user, limits=data["limits"])
        return self.respond(quota, status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        quota = self.get_object()
        data = self.validated()
        quota = services.quota_set(
            actor=request.user, tenant=quota.tenant, course=quota.course, user=quota.user, limits=data["limits"]
        )
        return self.respond(quota)

    def update(self, request, *args, **kwargs):
        return self.partial_update(request, *args, **kwargs)


# --- approval requests ---------------------------------------------------------------------------


class RequestFilter(filters.FilterSet):
    tenant = filters.CharFilter(field_name="tenant__slug")
    mine = filters.BooleanFilter(method="filter_mine", label="only my own requests")
    queue = filters.BooleanFilter(method="filter_queue", label="only requests waiting for my decision")

    class Meta:
        model = ApprovalRequest
        fields = ["state", "kind", "tenant", "course"]

    def filter_mine(self, queryset, name, value):
        return queryset.filter(requester=self.request.user) if value else queryset

    def filter_queue(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(pk__in=selectors.request_queue_for(self.request.user).values("pk"))


@extend_schema_view(create=extend_schema(request=RequestCreateSerializer, responses={201: RequestSerializer}))
class RequestViewSet(
    ReadWriteSerializers,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Approval requests: submit, then approve / reject (approvers) or cancel (the requester)."""

    serializer_class = RequestSerializer
    write_serializers = {"create": RequestCreateSerializer, "approve": ApproveSerializer, "reject": RejectSerializer}
    filterset_class = RequestFilter
    search_fields = ["title", "requester__username", "requester__display_name"]
    ordering_fields = ["created_at", "decided_at", "state"]

    def get_queryset(self):
        steps = Prefetch("steps", queryset=ApprovalStep.objects.select_related("decided_by").order_by("order"))
        return selectors.request_list_for(self.request.user).prefetch_related(steps)

    def _fresh(self, request_obj):
        return self.get_queryset().get(pk=request_obj.pk)

    def create(self, request, *args, **kwargs):
        data = self.validated()
        course = _visible_course(request.user, data["course"])
        if data.get("tenant"):
            tenant = _visible_tenant(request.user, data["tenant"])
        elif course is not None:
            tenant = course.tenant
        else:
            tenants = {m.tenant for m in selectors.memberships_of(request.user)}
            if len(tenants) != 1:
                raise serializers.ValidationError({"tenant": [_("请指定租户。")]})
            tenant = tenants.pop()
        created = services.request_submit(
            actor=request.user,
            tenant=tenant,
            kind=data["kind"],
            title=data["title"],
            course=course,
            payload=data["payload"],
            amounts=_amounts(data["amounts"]),
            estimated_cost=data["estimated_cost"],
            reason=data["reason"],
        )
        return self.respond(self._fresh(created), status.HTTP_201_CREATED)

    def _decide(self, service, *fields: str):
        """Call a decision service on the request in the URL with ``fields`` of the body; answer with the
        request as it now is. Someone else's request is a 404 before its body is even read."""
        target = self.get_object()
        data = self.validated() if fields else {}
        service(actor=self.request.user, request=target, **{field: data[field] for field in fields})
        return self.respond(self._fresh(target))

    @extend_schema(request=ApproveSerializer, responses=RequestSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(services.request_approve, "comment")

    @extend_schema(request=RejectSerializer, responses=RequestSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(services.request_reject, "reason")

    @extend_schema(request=None, responses=RequestSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._decide(services.request_cancel)

    @extend_schema(request=None, responses=RequestSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Try a partly delivered or failed request again (the requester or an admin of the tenant)."""
        return self._decide(services.request_retry)
