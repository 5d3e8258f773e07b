"""REST API of this app: audit-events (read-only) and compliance-reports (list, create, retrieve, pdf)."""

import django_filters
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action

from audit import selectors, services
from audit.models import AuditEvent, ComplianceReport
from common.api.serializers import FastReadMixin


class AuditEventSerializer(FastReadMixin, serializers.ModelSerializer):
    action_label = serializers.CharField(read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id", "occurred_at", "actor_id", "actor_username", "actor_role", "tenant_slug", "source_ip",
            "user_agent", "request_id", "action", "action_label", "object_type", "object_id", "object_name",
            "result", "reason", "detail", "prev_hash", "hash",
        ]  # fmt: skip
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    occurred_after = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    actor = django_filters.CharFilter(field_name="actor_username")
    tenant = django_filters.CharFilter(field_name="tenant_slug")
    action = django_filters.CharFilter(field_name="action")
    object_type = django_filters.CharFilter(field_name="object_type")
    object_id = django_filters.CharFilter(field_name="object_id")
    object_name = django_filters.CharFilter(field_name="object_name", lookup_expr="icontains")
    result = django_filters.ChoiceFilter(field_name="result", choices=AuditEvent.Result.choices)
    source_ip = django_filters.CharFilter(field_name="source_ip")

    class Meta:
        model = AuditEvent
        fields: list = []


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """Audit events the caller may read: the platform for the audit admin, their tenants for an auditor."""

    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    search_fields = ["actor_username", "object_name", "reason"]
    ordering_fields = ["id", "occurred_at"]
    ordering = ["-occurred_at", "-id"]

    def get_queryset(self):
        return selectors.event_list_for(self.request.user).order_by("-occurred_at", "-id")

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        filters = {key: value for key, value in request.query_params.items() if key not in ("page", "page_size")}
        if filters:
            services.search_record(actor=request.user, filters=filters, count=response.data.get("count", 0))
        return response


class ComplianceReportSerializer(serializers.ModelSerializer):
    level = serializers.ChoiceField(choices=ComplianceReport.Level.choices)

    class Meta:
        model = ComplianceReport
        fields = ["id", "level", "created_at", "created_by_username", "rate", "counts", "results"]
        read_only_fields = ["id", "created_at", "created_by_username", "rate", "counts", "results"]


class CanGenerateReports(permissions.BasePermission):
    """Generating a report reads the system's state; auditors may do it although they write nothing else."""

    def has_permission(self, request, view):
        # Reads go through the scoped queryset (a stranger gets a 404, not a 403 that confirms it exists).
        return request.method in permissions.SAFE_METHODS or selectors.can_read_reports(request.user)


class ComplianceReportViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = ComplianceReportSerializer
    # Not AuditorsReadOnly: a report is the auditors' own work product (see CanGenerateReports).
    permission_classes = [permissions.IsAuthenticated, CanGenerateReports]

    def get_queryset(self):
        return selectors.report_list_for(self.request.user)

    def perform_create(self, serializer):
        serializer.instance = services.compliance_report_create(
            actor=self.request.user, level=serializer.validated_data["level"]
        )

    @extend_schema(responses={200: OpenApiResponse(description="PDF")})
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        from audit.reports import report_filename, report_pdf_bytes

        report = self.get_object()
        response = HttpResponse(report_pdf_bytes(report), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{report_filename(report)}"'
        return response


def register(router) -> None:
    """Add this app's viewsets to the /api/v1/ router."""
    router.register("audit-events", AuditEventViewSet, basename="audit-event")
    router.register("compliance-reports", ComplianceReportViewSet, basename="compliance-report")


urlpatterns: list = []
