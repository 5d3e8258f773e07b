"""REST API of billing: usage, price plans, invoices (PDF/CSV/XLSX, issue, credit notes), budgets.

Thin views: querysets come from billing.selectors (another tenant's invoice is a 404),
writes go through one service each. Issuing invoices and credit notes needs a fresh
re-authentication (audit.security): X-Reauth-Password (and X-Reauth-OTP) headers.
"""

from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from audit.security import reauth_required
from billing import documents, selectors, services
from billing.models import UNITS, Budget, CreditNote, Invoice, InvoiceLine, Item, PricePlan, PriceRate, UsageInterval
from common import limits
from common.api.serializers import FastReadMixin, YearMonthField
from tenants.models import Course

# --- serializers ----------------------------------------------------------------------------


class InvoiceLineSerializer(serializers.ModelSerializer):
    item_display = serializers.CharField(source="get_item_display", read_only=True)

    class Meta:
        model = InvoiceLine
        fields = [
            "position",
            "course",
            "description",
            "item",
            "item_display",
            "unit",
            "period_start",
            "period_end",
            "quantity",
            "free_quantity",
            "rate",
            "discount_percent",
            "amount",
        ]


class CreditNoteSerializer(serializers.ModelSerializer):
    invoice = serializers.SlugRelatedField(slug_field="number", read_only=True)

    class Meta:
        model = CreditNote
        fields = ["id", "number", "invoice", "amount", "reason", "issued_at"]


class InvoiceSerializer(FastReadMixin, serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tenant_name = serializers.CharField(source="tenant.name", read_only=True)
    month = YearMonthField(read_only=True)
    credited = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    balance = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    status = serializers.CharField(read_only=True)
    status_display = serializers.CharField(source="get_status_display", read_only=True)

    read_related = ("tenant",)  # tenant_name

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "tenant",
            "tenant_name",
            "month",
            "currency",
            "total",
            "credited",
            "balance",
            "status",
            "status_display",
            "issued_at",
        ]


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)
    credit_notes = CreditNoteSerializer(many=True, read_only=True)

    class Meta(InvoiceSerializer.Meta):
        fields = [*InvoiceSerializer.Meta.fields, "lines", "credit_notes"]


class IssueSerializer(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM")


class IssueResultSerializer(serializers.Serializer):
    issued = serializers.ListField(child=serializers.CharField())
    skipped = serializers.IntegerField()


class CreditNoteCreateSerializer(serializers.Serializer):
    amount = serializers.CharField(max_length=20)
    reason = serializers.CharField(max_length=500)


class PriceRateSerializer(serializers.ModelSerializer):
    unit = serializers.SerializerMethodField()

    class Meta:
        model = PriceRate
        fields = ["item", "rate", "unit"]

    def get_unit(self, obj) -> str:
        return str(UNITS[Item(obj.item)])


class PricePlanSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    rates = PriceRateSerializer(many=True, read_only=True)

    class Meta:
        model = PricePlan
        fields = ["id", "tenant", "name", "effective_from", "discount_percent", "rates", "created_at"]


class PricePlanCreateSerializer(serializers.Serializer):
    tenant = serializers.SlugField()
    name = serializers.CharField(max_length=100)
    effective_from = serializers.DateTimeField(
        validators=[limits.validate_year],
        help_text="When the rates take effect: a whole hour (ISO 8601; without an offset, Asia/Shanghai time). "
        "A date alone (YYYY-MM-DD) means that day's local midnight.",
    )
    discount_percent = serializers.CharField(max_length=10, required=False, default="0")
    rates = serializers.DictField(child=serializers.CharField(max_length=30, allow_blank=True))


class UsageRowSerializer(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug", allow_null=True, default=None)
    course = serializers.CharField(source="course.code", allow_null=True, default=None)
    course_id = serializers.IntegerField(source="course.pk", allow_null=True, default=None)
    user = serializers.CharField(source="user.username", allow_null=True, default=None)
    item = serializers.CharField()
    unit = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=18, decimal_places=4)
    cost = serializers.DecimalField(max_digits=14, decimal_places=2)


class DailyCostSerializer(serializers.Serializer):
    day = serializers.DateField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=2)


class EstimateSerializer(serializers.Serializer):
    tenant = serializers.CharField(source="tenant.slug")
    month = YearMonthField()
    total = serializers.DecimalField(max_digits=14, decimal_places=2)


class BudgetSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Budget
        fields = ["id", "tenant", "course", "amount", "block_new_desktops", "updated_at"]


class BudgetCreateSerializer(serializers.Serializer):
    tenant = serializers.SlugField()
    course = serializers.IntegerField(required=False, allow_null=True, default=None)
    amount = serializers.CharField(max_length=20)
    block_new_desktops = serializers.BooleanField(default=False)


# --- views ----------------------------------------------------------------------------------


class FileRenderer(BaseRenderer):
    """Lets clients ask for the PDF/CSV/XLSX download by its own media type."""

    media_type = "*/*"
    format = "file"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


DOWNLOAD_RENDERERS = [JSONRenderer, FileRenderer]


def _finance_tenant(user, slug: str):
    tenant = selectors.finance_tenants_for(user).filter(slug=slug).first()
    if tenant is None:
        raise NotFound(_("租户不存在。"))
    return tenant


def _download(content: bytes, content_type: str, name: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


RANGE_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="first day (local), default: this month's first"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="last day (local), default: today"),
    OpenApiParameter("group_by", OpenApiTypes.STR, enum=list(selectors.GROUPS)),
    OpenApiParameter("tenant", OpenApiTypes.STR, description="tenant slug (with its children)"),
    OpenApiParameter("course", OpenApiTypes.INT),
]


class UsageViewSet(viewsets.GenericViewSet):
    """Usage and cost over a date range by tenant, course, user or item; daily cost; this month's estimate."""

    serializer_class = UsageRowSerializer
    # The rows are computed by the selector, not a queryset; this only tells the schema generator
    # (and the permission machinery) which model the endpoint is about.
    queryset = UsageInterval.objects.none()

    def _report(self, request):
        from django.utils import timezone

        today = timezone.localdate()
        params = request.query_params
        return selectors.usage_report_for(
            request.user,
            start=params.get("from") or today.replace(day=1),
            end=params.get("to") or today,
            group_by=params.get("group_by") or "course",
            tenant_slug=params.get("tenant", ""),
            course_id=params.get("course"),
        )

    @extend_schema(parameters=RANGE_PARAMETERS, responses=UsageRowSerializer(many=True))
    def list(self, request):
        report = self._report(request)
        page = self.paginate_queryset(report.rows)
        return self.get_paginated_response(UsageRowSerializer(page, many=True).data)

    @extend_schema(parameters=RANGE_PARAMETERS, responses=DailyCostSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None)
    def daily(self, request):
        report = self._report(request)
        return Response(DailyCostSerializer([{"day": d, "cost": c} for d, c in report.daily], many=True).data)

    @extend_schema(responses=EstimateSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None)
    def estimate(self, request):
        drafts = selectors.estimate_for(request.user)
        return Response(EstimateSerializer(drafts, many=True).data)


class PricePlanViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = PricePlanSerializer
    search_fields = ["name", "tenant__slug"]

    def get_queryset(self):
        return selectors.price_plan_list_for(self.request.user)

    @extend_schema(request=PricePlanCreateSerializer, responses={201: PricePlanSerializer})
    def create(self, request, *args, **kwargs):
        data = PricePlanCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if not selectors.finance_tenants_for(request.user).exists():
            raise PermissionDenied(_("只有财务可以修改价格方案。"))
        plan = services.price_plan_create(
            actor=request.user,
            tenant=_finance_tenant(request.user, values["tenant"]),
            name=values["name"],
            effective_from=values["effective_from"],
            rates=values["rates"],
            discount_percent=values["discount_percent"],
        )
        plan = selectors.price_plan_list_for(request.user).get(pk=plan.pk)
        return Response(PricePlanSerializer(plan).data, status=status.HTTP_201_CREATED)


class InvoiceViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = InvoiceSerializer
    search_fields = ["number", "tenant__slug", "tenant__name_zh"]

    def get_queryset(self):
        queryset = selectors.invoice_list_for(self.request.user)
        month = self.request.query_params.get("month")
        if month and self.action == "list":
            queryset = queryset.filter(month=services.month_parse(month))
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("lines", "credit_notes")
        return queryset

    def get_serializer_class(self):
        return InvoiceDetailSerializer if self.action == "retrieve" else InvoiceSerializer

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], renderer_classes=DOWNLOAD_RENDERERS)
    def pdf(self, request, pk=None):
        invoice = self.get_object()
        return _download(documents.invoice_pdf(invoice), "application/pdf", documents.filename(invoice, "pdf"))

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], renderer_classes=DOWNLOAD_RENDERERS)
    def csv(self, request, pk=None):
        invoice = self.get_object()
        return _download(documents.invoice_csv(invoice), "text/csv; charset=utf-8", documents.filename(invoice, "csv"))

    @extend_schema(
        responses={(200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"): OpenApiTypes.BINARY}
    )
    @action(detail=True, methods=["get"], renderer_classes=DOWNLOAD_RENDERERS)
    def xlsx(self, request, pk=None):
        invoice = self.get_object()
        return _download(
            documents.invoice_xlsx(invoice),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            documents.filename(invoice, "xlsx"),
        )

    @extend_schema(
        request=IssueSerializer,
        responses={200: IssueResultSerializer, 403: OpenApiResponse(description="reauthentication_required")},
    )
    @action(detail=False, methods=["post"])
    def issue(self, request):
        """Issue last month's (or any past month's) invoices of the caller's finance tenants."""
        data = IssueSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenants = list(selectors.finance_tenants_for(request.user))
        if not tenants:
            raise PermissionDenied(_("只有财务可以开具账单。"))
        month = services.month_parse(data.validated_data["month"])

        @reauth_required
        def issue(request):
            result = services.invoices_issue(month=month, actor=request.user, tenants=tenants)
            return Response({"issued": result.issued, "skipped": result.skipped})

        return issue(request)

    @extend_schema(
        request=CreditNoteCreateSerializer,
        responses={201: CreditNoteSerializer, 403: OpenApiResponse(description="reauthentication_required")},
    )
    @action(detail=True, methods=["post"], url_path="credit-notes")
    def credit_notes(self, request, pk=None):
        """Correct an issued invoice with a credit note (the invoice never changes)."""
        invoice = self.get_object()
        if not selectors.finance_tenants_for(request.user).filter(pk=invoice.tenant_id).exists():
            raise PermissionDenied(_("只有财务可以开具红字冲销单。"))
        data = CreditNoteCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        @reauth_required
        def credit(request):
            note = services.credit_note_issue(
                actor=request.user,
                invoice=invoice,
                amount=data.validated_data["amount"],
                reason=data.validated_data["reason"],
            )
            return Response(CreditNoteSerializer(note).data, status=status.HTTP_201_CREATED)

        return credit(request)


class BudgetViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    serializer_class = BudgetSerializer

    def get_queryset(self):
        return selectors.budget_list_for(self.request.user).order_by("tenant__path", "course__code")

    @extend_schema(request=BudgetCreateSerializer, responses={201: BudgetSerializer})
    def create(self, request, *args, **kwargs):
        data = BudgetCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if not selectors.finance_tenants_for(request.user).exists():
            raise PermissionDenied(_("只有财务可以设置预算。"))
        tenant = _finance_tenant(request.user, values["tenant"])
        course = None
        if values["course"] is not None:
            course = Course.objects.filter(pk=values["course"], tenant=tenant).first()
            if course is None:
                raise NotFound(_("课程不存在。"))
        budget = services.budget_set(
            actor=request.user,
            tenant=tenant,
            course=course,
            amount=values["amount"],
            block_new_desktops=values["block_new_desktops"],
        )
        return Response(BudgetSerializer(budget).data, status=status.HTTP_201_CREATED)


def register(router) -> None:
    """Add this app's viewsets to the /api/v1/ router."""
    router.register("usage", UsageViewSet, basename="usage")
    router.register("price-plans", PricePlanViewSet, basename="price-plan")
    router.register("invoices", InvoiceViewSet, basename="invoice")
    router.register("budgets", BudgetViewSet, basename="budget")


urlpatterns: list = []
