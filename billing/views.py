"""HTML pages of billing: usage and cost (with the daily chart), invoices, price plans, budgets.

The same selectors and services as the API. A person with no billing role gets a 404, so
the pages do not even confirm what exists.
"""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.shortcuts import render as django_render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from audit.security import reauth_fresh, reauth_required
from billing import documents, selectors, services
from billing.forms import BudgetForm, CreditNoteForm, IssueForm, PricePlanForm, UsageFilterForm
from billing.models import Invoice
from common.errors import ServiceError
from common.ui import service_call
from tenants.models import Course

PAGE_SIZE = 25


def _require(allowed: bool) -> None:
    if not allowed:
        raise Http404(_("页面不存在。"))


def render(request, template: str, context: dict):
    context["can_read_billing"] = selectors.can_read_billing(request.user)
    return django_render(request, template, context)


def _is_finance(user) -> bool:
    return selectors.finance_tenants_for(user).exists()


@login_required
def usage(request):
    _require(selectors.can_see_usage(request.user))
    today = timezone.localdate()
    initial = {"start": today.replace(day=1), "end": today, "group_by": "course"}
    form = UsageFilterForm(request.GET or None, initial=initial)
    report = None
    if not request.GET or form.is_valid():
        values = form.cleaned_data if request.GET else initial
        try:
            report = selectors.usage_report_for(
                request.user,
                start=values["start"],
                end=values["end"],
                group_by=values.get("group_by") or "course",
                tenant_slug=values.get("tenant") or "",
            )
        except ServiceError as exc:
            form.add_error(None, exc.message)
    estimates = selectors.estimate_for(request.user) if selectors.can_read_billing(request.user) else []
    daily = [{"day": d.isoformat(), "cost": str(c)} for d, c in (report.daily if report else [])]
    return render(
        request,
        "billing/usage.html",
        {
            "form": form,
            "report": report,
            "daily": daily,
            "estimates": estimates,
            "estimate_seconds": selectors.ESTIMATE_SECONDS,
            "section": "usage",
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def invoice_list(request):
    _require(selectors.can_read_billing(request.user))
    finance = _is_finance(request.user)
    if request.method == "POST":
        _require(finance)
        return _issue_or_reauth(request)
    if finance and request.GET.get("resume") == "issue" and PENDING_ISSUE in request.session and reauth_fresh(request):
        # Back from re-authentication: finish the issue that the finance user asked for.
        return _issue(request, request.session.pop(PENDING_ISSUE))
    queryset = selectors.invoice_list_for(request.user)
    query = request.GET.get("q", "").strip()
    if query:
        queryset = queryset.filter(Q(number__icontains=query) | Q(tenant__name_zh__icontains=query))
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    last_month = (timezone.localdate().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    return render(
        request,
        "billing/invoice_list.html",
        {
            "page": page,
            "query": query,
            "finance": finance,
            "issue_form": IssueForm(initial={"month": last_month}),
            "section": "invoices",
        },
    )


PENDING_ISSUE = "_cc_billing_pending_issue"


def _issue_or_reauth(request):
    """Issue at once when the identity was confirmed recently; otherwise keep the month asked for,
    send the user to re-authenticate, and finish the issue when they come back (no lost click)."""
    form = IssueForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("月份格式应为 YYYY-MM，例如 2026-10。"))
        return redirect("billing:invoice_list")
    if reauth_fresh(request):
        return _issue(request, form.cleaned_data["month"])
    request.session[PENDING_ISSUE] = form.cleaned_data["month"]
    back = f"{reverse('billing:invoice_list')}?resume=issue"
    return redirect(f"{reverse('audit:reauth')}?{urlencode({'next': back})}")


def _issue(request, month: str):
    return service_call(
        request,
        lambda: services.invoices_issue(
            month=month,
            actor=request.user,
            tenants=list(selectors.finance_tenants_for(request.user)),
        ),
        success=lambda result: (
            _("已开具 %(count)s 张账单，跳过 %(skipped)s 个已开具的租户。")
            % {"count": len(result.issued), "skipped": result.skipped}
        ),
        next="billing:invoice_list",
    )


@login_required
def invoice_detail(request, pk: int):
    invoice = get_object_or_404(selectors.invoice_list_for(request.user), pk=pk)
    lines = invoice.lines.select_related("course").order_by("position")
    can_credit = selectors.finance_tenants_for(request.user).filter(pk=invoice.tenant_id).exists()
    return render(
        request,
        "billing/invoice_detail.html",
        {
            "invoice": invoice,
            "lines": lines,
            "credit_notes": invoice.credit_notes.all(),
            "credit_form": CreditNoteForm() if can_credit else None,
            "section": "invoices",
        },
    )


DOWNLOADS = {
    "pdf": (documents.invoice_pdf, "application/pdf"),
    "csv": (documents.invoice_csv, "text/csv; charset=utf-8"),
    "xlsx": (documents.invoice_xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


@login_required
def invoice_download(request, pk: int, fmt: str):
    if fmt not in DOWNLOADS:
        raise Http404(_("页面不存在。"))
    invoice = get_object_or_404(selectors.invoice_list_for(request.user), pk=pk)
    render_document, content_type = DOWNLOADS[fmt]
    response = HttpResponse(render_document(invoice), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{documents.filename(invoice, fmt)}"'
    return response


@login_required
@require_POST
def invoice_credit(request, pk: int):
    invoice = get_object_or_404(selectors.invoice_list_for(request.user), pk=pk)
    _require(selectors.finance_tenants_for(request.user).filter(pk=invoice.tenant_id).exists())
    return _credit(request, invoice)


@reauth_required
def _credit(request, invoice: Invoice):
    form = CreditNoteForm(request.POST)
    here = reverse("billing:invoice_detail", args=[invoice.pk])
    if not form.is_valid():
        messages.error(request, _("请填写冲销金额和原因。"))
        return redirect(here)
    return service_call(
        request,
        lambda: services.credit_note_issue(
            actor=request.user, invoice=invoice, amount=form.cleaned_data["amount"], reason=form.cleaned_data["reason"]
        ),
        success=lambda note: _("已开具红字冲销单 %(number)s。") % {"number": note.number},
        next=here,
    )


@login_required
@require_http_methods(["GET", "POST"])
def price_plans(request):
    _require(selectors.can_read_billing(request.user))
    writable = list(selectors.finance_tenants_for(request.user).order_by("path"))
    form = PricePlanForm(request.POST or None, tenants=writable) if writable else None
    if request.method == "POST":
        _require(bool(writable))
        if form.is_valid():
            tenant = next(t for t in writable if t.slug == form.cleaned_data["tenant"])
            done = service_call(
                request,
                lambda: services.price_plan_create(
                    actor=request.user,
                    tenant=tenant,
                    name=form.cleaned_data["name"],
                    effective_from=form.cleaned_data["effective_from"],
                    rates=form.rates(),
                    discount_percent=form.cleaned_data.get("discount_percent") or 0,
                ),
                success=_("价格方案已保存。"),
                next="billing:price_plans",
                form=form,
            )
            if done:
                return done
    page = Paginator(selectors.price_plan_list_for(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "billing/price_plans.html", {"page": page, "form": form, "section": "price_plans"})


@login_required
@require_http_methods(["GET", "POST"])
def budgets(request):
    _require(selectors.can_read_billing(request.user))
    writable = list(selectors.finance_tenants_for(request.user).order_by("path"))
    courses = Course.objects.filter(tenant__in=writable).order_by("code") if writable else []
    form = BudgetForm(request.POST or None, tenants=writable, courses=courses) if writable else None
    if request.method == "POST":
        _require(bool(writable))
        if form.is_valid():
            tenant = next(t for t in writable if t.slug == form.cleaned_data["tenant"])
            course = next((c for c in courses if str(c.pk) == form.cleaned_data.get("course")), None)
            done = service_call(
                request,
                lambda: services.budget_set(
                    actor=request.user,
                    tenant=tenant,
                    course=course,
                    amount=form.cleaned_data["amount"],
                    block_new_desktops=form.cleaned_data["block_new_desktops"],
                ),
                success=_("预算已保存。"),
                next="billing:budgets",
                form=form,
            )
            if done:
                return done
    rows = [(b, selectors.budget_spent(b)) for b in selectors.budget_list_for(request.user)[:100]]
    return render(request, "billing/budgets.html", {"rows": rows, "form": form, "section": "budgets"})
