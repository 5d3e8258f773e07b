"""HTML pages of the audit app: login with a second factor, account security, auditor pages, policy."""

import contextlib
import time
from datetime import datetime, timedelta
from datetime import time as clock

import segno
from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from audit import chain, compliance, hooks, policy, rows, security, selectors, services
from audit.actions import Action
from audit.errors import AuditError
from audit.forms import EventFilterForm, ManualAssessmentForm, OTPForm, PolicyForm, ReauthForm, ReportForm
from audit.models import AuditEvent, ManualAssessment
from common import spreadsheet
from common.errors import ServiceError
from common.http import safe_next
from common.paging import Paginator
from common.ui import service_call

SESSION_PENDING = "_cc_pending_login"
PENDING_SECONDS = 300
PENDING_TRIES = 5
EXPORT_LIMIT = 100_000
# Without a start date the chart shows the last month: grouping millions of rows per page view is not free.
TIMELINE_DEFAULT = timedelta(days=31)


# --- login with a second factor --------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Password first; accounts with a second factor then give a one-time code before they are logged in."""

    redirect_authenticated_user = True

    def form_valid(self, form):
        user = form.get_user()
        if security.needs_second_factor(user) and security.has_second_factor(user):
            self.request.session[SESSION_PENDING] = {
                "user_id": user.pk,
                "backend": user.backend,
                "at": time.time(),
                "tries": 0,
                "next": self.get_success_url(),
            }
            return HttpResponseRedirect(reverse("audit:otp_login"))
        return super().form_valid(form)


@require_http_methods(["GET", "POST"])
def otp_login_view(request):
    """Second step of the login: the one-time code (or a recovery code) of the pending account."""
    pending = request.session.get(SESSION_PENDING)
    if not pending or time.time() - pending["at"] > PENDING_SECONDS:
        request.session.pop(SESSION_PENDING, None)
        messages.warning(request, _("登录已过期，请重新输入用户名和密码。"))
        return redirect("login")
    user = get_user_model().objects.filter(pk=pending["user_id"], is_active=True).first()
    if user is None:
        return redirect("login")
    form = OTPForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = security.otp_verify(user, form.cleaned_data["otp"])
        if device is not None:
            del request.session[SESSION_PENDING]
            user.backend = pending["backend"]
            auth_login(request, user, backend=pending["backend"])
            otp_login(request, device)
            return HttpResponseRedirect(pending.get("next") or "/")
        pending["tries"] += 1
        # A wrong code is a failed login: django-axes counts it toward the lockout (the password
        # step alone resets nothing, as no one is logged in yet), and the audit log records it.
        user_login_failed.send(
            sender=__name__, credentials={"username": user.username, "second_factor": "wrong one-time code"},
            request=request,
        )  # fmt: skip
        if getattr(request, "axes_locked_out", False):
            request.session.pop(SESSION_PENDING, None)
            return lockout_response(request)
        if pending["tries"] >= PENDING_TRIES:
            request.session.pop(SESSION_PENDING, None)
            messages.error(request, _("动态口令错误次数过多，请重新登录。"))
            return redirect("login")
        request.session[SESSION_PENDING] = pending
        form.add_error("otp", _("动态口令错误或已使用过，请输入新的口令。"))
    return render(request, "audit/otp_login.html", {"form": form, "username": user.username})


def lockout_response(request, original_response=None, credentials=None):
    """What a locked-out login gets (django-axes): the same for existing and unknown names."""
    minutes = policy.current_policy().lockout_minutes
    message = ngettext(
        "登录失败次数过多，账号已锁定 %(n)d 分钟，请稍后再试或联系管理员。",
        "登录失败次数过多，账号已锁定 %(n)d 分钟，请稍后再试或联系管理员。",
        minutes,
    ) % {"n": minutes}
    if request.path.startswith("/api/"):
        return JsonResponse({"code": AuditError.ACCOUNT_LOCKED, "message": message, "detail": {}}, status=403)
    return render(request, "audit/lockout.html", {"message": message}, status=403)


# --- second factor enrolment -----------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def otp_enrol(request):
    """Scan the QR code, type the first code: the device is confirmed and recovery codes are shown once."""
    if security.has_second_factor(request.user) and not request.user.is_verified():
        # Replacing a device needs the current one: a password alone must not swap the second factor.
        return HttpResponseRedirect(f"{reverse('audit:otp_verify')}?next={reverse('audit:otp_enrol')}")
    device = security.totp_device(request.user, confirmed=False)
    if device is None or request.GET.get("restart"):
        device = security.totp_enrolment_start(user=request.user)
    form = OTPForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        codes = security.totp_enrolment_confirm(user=request.user, device=device, token=form.cleaned_data["otp"])
        if codes is not None:
            otp_login(request, device)
            return render(request, "audit/recovery_codes.html", {"codes": codes, "next": safe_next(request, "/")})
        form.add_error("otp", _("动态口令不正确，请确认手机时间准确后重试。"))
    qr = segno.make(device.config_url, error="m")
    context = {
        "form": form,
        "qr_svg": qr.svg_inline(scale=4, dark="#212529"),
        "secret": _base32(device.bin_key),
        "next": safe_next(request, "/"),
        "required": security.needs_second_factor(request.user),
    }
    return render(request, "audit/otp_enrol.html", context)


def _base32(key: bytes) -> str:
    import base64

    return base64.b32encode(key).decode().rstrip("=")


@login_required
@require_http_methods(["GET", "POST"])
def otp_verify(request):
    """A logged-in account (e.g. after enrolment elsewhere) proves its second factor for this session."""
    form = OTPForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = security.otp_verify(request.user, form.cleaned_data["otp"])
        if device is not None:
            otp_login(request, device)
            return HttpResponseRedirect(safe_next(request, "/"))
        username = request.user.username
        user_login_failed.send(
            sender=__name__, credentials={"username": username, "second_factor": "wrong one-time code"},
            request=request,
        )  # fmt: skip
        if getattr(request, "axes_locked_out", False):
            logout(request)  # the password got them this far; five wrong codes end the session
            return lockout_response(request)
        form.add_error("otp", _("动态口令错误或已使用过，请输入新的口令。"))
    return render(request, "audit/otp_login.html", {"form": form, "username": request.user.username})


@login_required
@require_http_methods(["GET", "POST"])
def account_security(request):
    """The person's own security page: second factor, recovery codes, password age."""
    if request.method == "POST" and request.POST.get("action") == "recovery":
        if not security.reauth_fresh(request):
            return HttpResponseRedirect(f"{reverse('audit:reauth')}?next={reverse('audit:account')}")
        codes = security.recovery_codes_generate(user=request.user)
        return render(request, "audit/recovery_codes.html", {"codes": codes, "next": reverse("audit:account")})
    context = {
        "has_totp": security.totp_device(request.user) is not None,
        "needs_second_factor": security.needs_second_factor(request.user),
        "password_changed_at": security.password_changed_at(request.user),
        "password_max_age": policy.current_policy().password_max_age_days,
    }
    return render(request, "audit/account.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def password_change(request):
    errors = []
    expired = bool(request.session.get(security.SESSION_PASSWORD_EXPIRED))
    if request.method == "POST":
        old, new, again = (request.POST.get(k, "") for k in ("old_password", "new_password", "new_password2"))
        if not request.user.check_password(old):
            errors.append(_("当前密码不正确。"))
        elif new != again:
            errors.append(_("两次输入的新密码不一致。"))
        else:
            try:
                security.password_change(user=request.user, new_password=new)
            except ValidationError as exc:
                errors.extend(exc.messages)
            else:
                from django.contrib.auth import update_session_auth_hash

                update_session_auth_hash(request, request.user)
                request.session.pop(security.SESSION_PASSWORD_EXPIRED, None)
                messages.success(request, _("密码已修改。"))
                return HttpResponseRedirect(safe_next(request, "/"))
    from django.contrib.auth.password_validation import password_validators_help_texts

    context = {
        "errors": errors,
        "expired": expired,
        "help_texts": password_validators_help_texts(),
        "next": safe_next(request, "/"),
    }
    return render(request, "audit/password_change.html", context, status=400 if errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def reauth(request):
    """Confirm who you are before a dangerous action (see audit.security.reauth_required)."""
    form = ReauthForm(request.POST or None)
    needs_otp = security.has_second_factor(request.user) or security.second_factor_owed(request.user)
    if request.method == "POST" and form.is_valid():
        if security.reauth_confirm(
            request=request, password=form.cleaned_data["password"], otp=form.cleaned_data["otp"]
        ):
            return HttpResponseRedirect(safe_next(request, "/"))
        form.add_error(None, _("密码或动态口令不正确。"))
    return render(request, "audit/reauth.html", {"form": form, "needs_otp": needs_otp, "next": safe_next(request, "/")})


# --- auditor pages ---------------------------------------------------------------------------


def _require_auditor(request):
    if not request.user.is_authenticated:
        raise PermissionDenied
    if not selectors.can_read_audit(request.user):
        raise PermissionDenied


@login_required
def event_list(request):
    _require_auditor(request)
    form = EventFilterForm(request.GET or None)
    queryset = form.apply(selectors.event_list_for(request.user))
    paginator = Paginator(queryset.order_by("-occurred_at", "-id").only(*rows.LISTED), 50)
    page = paginator.get_page(request.GET.get("page"))
    page.object_list = rows.event_rows(page.object_list)
    filters = form.active_filters()
    if filters:
        services.search_record(actor=request.user, filters=filters, count=paginator.count)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "filters": filters,
        "querystring": query.urlencode(),
        "scope": hooks.audit_scope(request.user),
    }
    if request.htmx and request.htmx.target == "event-results":  # a page of rows: no chart to draw
        return render(request, "audit/_event_rows.html", context)
    charted = queryset
    if "date_from" not in filters:
        # Whole local days, the first as complete as the others (and the same query all day long).
        first = timezone.localdate() - TIMELINE_DEFAULT + timedelta(days=1)
        since = datetime.combine(first, clock.min, timezone.get_current_timezone())
        charted = queryset.filter(occurred_at__gte=since)
    context["timeline"] = selectors.timeline(charted)
    return render(request, "audit/event_list.html", context)


@login_required
def event_detail(request, event_id: int):
    _require_auditor(request)
    try:
        event = selectors.event_get_for(request.user, event_id=event_id)
    except AuditEvent.DoesNotExist:
        raise Http404
    intact = chain.event_hash(chain.values_of(event)) == event.hash
    previous = AuditEvent.objects.filter(id=event.id - 1).values_list("hash", flat=True).first()
    linked = (
        event.prev_hash == (previous or chain.GENESIS_HASH) if event.id > 1 else event.prev_hash == chain.GENESIS_HASH
    )
    return render(request, "audit/event_detail.html", {"event": event, "intact": intact, "linked": linked})


@login_required
def event_export(request, fmt: str):
    _require_auditor(request)
    if fmt not in ("csv", "xlsx"):
        raise Http404
    form = EventFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return render(request, "errors/error.html", {"status": 400, "message": _("筛选条件有误。")}, status=400)
    queryset = form.apply(selectors.event_list_for(request.user)).order_by("id")
    rows = queryset.values_list(*EXPORT_COLUMNS)[:EXPORT_LIMIT]
    count = queryset[:EXPORT_LIMIT].count()
    services.export_record(actor=request.user, fmt=fmt, filters=form.active_filters(), count=count)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    sheet = _export_rows(rows)
    if fmt == "csv":
        response = StreamingHttpResponse(spreadsheet.csv_chunks(sheet), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response
    response = HttpResponse(
        spreadsheet.xlsx_bytes(sheet, title=_("审计日志")),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.xlsx"'
    return response


EXPORT_COLUMNS = (
    "id",
    "occurred_at",
    "actor_username",
    "actor_role",
    "tenant_slug",
    "source_ip",
    "user_agent",
    "action",
    "object_type",
    "object_id",
    "object_name",
    "result",
    "reason",
    "request_id",
    "hash",
)


def _export_headers() -> list[str]:
    return [
        _("编号"),
        _("时间（北京时间）"),
        _("操作者"),
        _("角色"),
        _("租户"),
        _("来源IP"),
        _("客户端"),
        _("操作"),
        _("对象类型"),
        _("对象ID"),
        _("对象名称"),
        _("结果"),
        _("原因"),
        _("请求ID"),
        _("摘要"),
    ]


def _export_row(row) -> list:
    values = list(row)
    values[1] = timezone.localtime(values[1]).strftime("%Y-%m-%d %H:%M:%S")
    with contextlib.suppress(ValueError):
        values[7] = f"{Action(values[7]).label} ({values[7]})"
    values[11] = str(AuditEvent.Result(values[11]).label) if values[11] in AuditEvent.Result.values else values[11]
    return values


def _export_rows(rows):
    """The header, then one row per event, read from the database in chunks as the download goes."""
    yield _export_headers()
    for row in rows.iterator(chunk_size=2000):
        yield _export_row(row)


@login_required
@require_http_methods(["GET", "POST"])
def chain_status(request):
    _require_auditor(request)
    if request.method == "POST":
        result = services.chain_verify(source="page")
        if result.ok:
            messages.success(
                request,
                ngettext("审计链完整：已校验 %(n)d 条事件。", "审计链完整：已校验 %(n)d 条事件。", result.checked)
                % {"n": result.checked},
            )
        else:
            messages.error(request, _("审计链被破坏：首个异常事件 #%(id)s。") % {"id": result.first_bad})
        return redirect("audit:chain")
    from audit.models import AuditArchive, AuditChainHead, ChainVerification

    context = {
        "last": selectors.last_verification(),
        "history": ChainVerification.objects.all()[:10],
        "head": AuditChainHead.objects.filter(pk=1).first(),
        "archives": AuditArchive.objects.all()[:10],
    }
    return render(request, "audit/chain.html", context)


# --- 等保 reports ------------------------------------------------------------------------------


def _require_report_reader(request):
    if not selectors.can_read_reports(request.user):
        raise PermissionDenied


@login_required
@require_http_methods(["GET", "POST"])
def report_list(request):
    _require_report_reader(request)
    form = ReportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        done = service_call(
            request,
            lambda: services.compliance_report_create(actor=request.user, level=form.cleaned_data["level"]),
            next=lambda report: reverse("audit:report_detail", kwargs={"report_id": report.pk}),
            back=None,
        )
        if done:
            return done
    paginator = Paginator(selectors.report_list_for(request.user), 20)
    page = paginator.get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "can_read_log": selectors.can_read_audit(request.user)}
    return render(request, "audit/report_list.html", context)


def _report_or_404(request, report_id):
    report = selectors.report_list_for(request.user).filter(pk=report_id).first()
    if report is None:
        raise Http404
    return report


@login_required
def report_detail(request, report_id: int):
    _require_report_reader(request)
    report = _report_or_404(request, report_id)
    from audit.reports import grouped_results

    return render(request, "audit/report_detail.html", {"report": report, "groups": grouped_results(report)})


@login_required
def report_pdf(request, report_id: int):
    _require_report_reader(request)
    report = _report_or_404(request, report_id)
    from audit.reports import report_filename, report_pdf_bytes

    response = HttpResponse(report_pdf_bytes(report), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{report_filename(report)}"'
    return response


# --- security policy (security admin) --------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def policy_edit(request):
    if "security_admin" not in hooks.roles_of(request.user):
        raise PermissionDenied
    current = policy.current_policy()
    form = PolicyForm(request.POST or None, policy=current)
    if request.method == "POST" and form.is_valid():
        done = service_call(
            request,
            lambda: services.policy_update(actor=request.user, **form.changes()),
            success=_("安全策略已保存。"),
            next="audit:policy",
            form=form,
        )
        if done:
            return done
    manual = {item.check_id: item for item in ManualAssessment.objects.all()}
    checks = [
        {
            "check": check,
            "item": manual.get(check.id),
            "form": ManualAssessmentForm(
                initial={
                    "check_id": check.id,
                    "status": manual[check.id].status if check.id in manual else compliance.Status.CONFORM,
                    "evidence": manual[check.id].evidence if check.id in manual else "",
                },
                auto_id=f"id_{check.id.replace('.', '_')}_%s",
            ),
        }
        for check in compliance.manual_checks()
    ]
    return render(request, "audit/policy.html", {"form": form, "policy": current, "checks": checks})


@login_required
@require_POST
def manual_assessment(request):
    check_id = request.POST.get("check_id", "")
    form = ManualAssessmentForm(request.POST, prefix=None)
    if not form.is_valid():
        messages.error(request, _("请选择符合情况并填写证据。"))
        return redirect("audit:policy")
    return service_call(
        request,
        lambda: services.manual_assessment_record(
            actor=request.user,
            check_id=check_id,
            status=form.cleaned_data["status"],
            evidence=form.cleaned_data["evidence"],
        ),
        success=_("已录入人工核查结果。"),
        next=f"{reverse('audit:policy')}#manual",
        refused=_forbidden_is_403,
    )


def _forbidden_is_403(request, exc: ServiceError) -> None:
    """Someone who may not record findings gets the 403 page, not a message on a page they cannot use."""
    if exc.status == 403:
        raise PermissionDenied
    messages.error(request, exc.message)
