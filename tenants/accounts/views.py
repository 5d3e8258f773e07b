"""Account pages: the list (create, staff import, conflicts, service accounts), one account (disable,
re-enable, reset password, local password, platform role) and a tenant's directory placement rule.

Querysets come from tenants.accounts.selectors: another tenant's account is a 404 here too.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from common.ui import service_call
from tenants import permissions
from tenants import services as tenant_services
from tenants.accounts import forms, selectors, services
from tenants.identity.models import TenantDirectory
from tenants.roles import PlatformRole
from tenants.roster import roster_parse

PAGE_SIZE = 25


def _is_secadmin(user) -> bool:
    return permissions.is_platform(user, PlatformRole.SECURITY_ADMIN)


def _require_admin(user):
    if not (_is_secadmin(user) or selectors.managed_tenants_for(user).exists()):
        raise Http404


def _tenant(tenants, slug):
    return next((t for t in tenants if t.slug == slug), None)


def _create(request, tenants, form):
    data = form.cleaned_data
    user = services.account_create(
        actor=request.user,
        tenant=_tenant(tenants, data["tenant"]),
        username=data["username"],
        display_name=data["display_name"],
        role=data["role"],
        password=data["password"],
        number=data["student_number"] or "",
    )
    messages.success(request, _("已创建账号 %(name)s，首次登录时须修改密码。") % {"name": user.username})


def _import(request, tenants, form):
    upload = form.cleaned_data["file"]
    rows = roster_parse(filename=upload.name, content=upload.read())
    counts = services.staff_import(
        actor=request.user,
        tenant=_tenant(tenants, form.cleaned_data["tenant"]),
        rows=rows,
        role=form.cleaned_data["role"],
    )
    messages.success(
        request,
        _("导入完成：新建账号 %(created_accounts)s 个，授予角色 %(granted)s 个，已有 %(unchanged)s 个。") % counts,
    )


def _service(request, tenants, form):
    data = form.cleaned_data
    user, token = services.service_account_create(
        actor=request.user,
        username=data["username"],
        display_name=data["username"],
        tenant=_tenant(tenants, data["tenant"]),
        role=data["role"],
        purpose=data["purpose"],
    )
    messages.warning(
        request, _("服务账号 %(name)s 的 API 令牌（只显示这一次）：%(token)s") % {"name": user.username, "token": token}
    )


def _form_refused(form, exc) -> None:
    """A refusal on the form, with the line of the uploaded file each problem is on (staff import)."""
    form.add_error(None, exc.message)
    for error in exc.detail.get("errors", []):
        form.add_error(None, _("第 %(line)s 行：%(message)s") % error)


def _password_refused(request, exc) -> None:
    """A refusal as a message, and each rule the new password broke as one more."""
    messages.error(request, exc.message)
    for problem in exc.detail.get("password", []):
        messages.error(request, problem)


@login_required
def account_list(request):
    user = request.user
    _require_admin(user)
    tenants = list(selectors.managed_tenants_for(user))
    posted = request.POST.get("form") if request.method == "POST" else None
    bound = {
        "create": forms.AccountForm(request.POST if posted == "create" else None, tenants=tenants, prefix="create"),
        "import": forms.StaffImportForm(
            request.POST if posted == "import" else None, request.FILES or None, tenants=tenants, prefix="import"
        ),
        "service": forms.ServiceAccountForm(
            request.POST if posted == "service" else None, tenants=tenants, prefix="service"
        ),
    }
    handlers = {"create": _create, "import": _import, "service": _service}
    if posted in handlers and bound[posted].is_valid():
        form = bound[posted]
        done = service_call(
            request,
            lambda: handlers[posted](request, tenants, form),
            next="accounts:list",
            form=form,
            refused=lambda request, exc: _form_refused(form, exc),
        )
        if done:
            return done
    accounts = selectors.account_list_for(user)
    query = request.GET.get("q", "").strip()
    if query:
        accounts = accounts.filter(
            Q(username__icontains=query) | Q(display_name__icontains=query) | Q(student_number=query)
        )
    context = {
        "page": Paginator(accounts, PAGE_SIZE).get_page(request.GET.get("page")),
        "query": query,
        "forms": bound,
        "tenants": tenants,
        "conflicts": selectors.conflict_list_for(user)[:20],
        "is_secadmin": _is_secadmin(user),
    }
    return render(request, "accounts/list.html", context)


@login_required
def account_detail(request, pk):
    account = get_object_or_404(selectors.account_list_for(request.user), pk=pk)
    context = {
        "account": account,
        "state": getattr(account, "account_state", None) if hasattr(account, "account_state") else None,
        "reset_form": forms.PasswordResetForm(),
        "role_form": forms.PlatformRoleForm(),
        "is_secadmin": _is_secadmin(request.user),
        "platform_role": getattr(account, "platform_role", None) if hasattr(account, "platform_role") else None,
    }
    return render(request, "accounts/detail.html", context)


@login_required
@require_POST
def account_action(request, pk, verb):
    account = get_object_or_404(selectors.account_list_for(request.user), pk=pk)
    actor = request.user
    actions = {
        "disable": lambda: services.account_set_active(actor=actor, user=account, active=False),
        "enable": lambda: services.account_set_active(actor=actor, user=account, active=True),
        "local-password-on": lambda: services.account_local_password_set(actor=actor, user=account, allowed=True),
        "local-password-off": lambda: services.account_local_password_set(actor=actor, user=account, allowed=False),
        "reset-password": lambda: services.account_password_reset(
            actor=actor, user=account, new_password=request.POST.get("password", "")
        ),
        "grant-role": lambda: tenant_services.platform_role_grant(
            actor=actor, user=account, role=request.POST.get("role", "")
        ),
        "revoke-role": lambda: tenant_services.platform_role_revoke(actor=actor, assignment=account.platform_role),
    }
    if verb not in actions:
        raise Http404
    return service_call(
        request,
        actions[verb],
        success=_("已保存。"),
        next=reverse("accounts:detail", args=[account.pk]),
        refused=_password_refused,
    )


@login_required
def directory_edit(request, slug):
    tenant = get_object_or_404(selectors.managed_tenants_for(request.user), slug=slug)
    directory = TenantDirectory.objects.filter(tenant=tenant).first()
    initial = (
        {
            "departments": directory.departments,
            "place_new_staff": directory.place_new_staff,
            "staff_role": directory.staff_role,
        }
        if directory
        else {}
    )
    form = forms.DirectoryForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        done = service_call(
            request,
            lambda: services.tenant_directory_set(actor=request.user, tenant=tenant, **form.cleaned_data),
            success=_("已保存目录对应。"),
            next="accounts:list",
            form=form,
        )
        if done:
            return done
    return render(request, "accounts/directory.html", {"tenant": tenant, "form": form})
