"""HTML pages of tenants: the tree, members, courses and rosters, quotas, approval queue and history.

Same services as the API; querysets come from tenants.selectors, so another tenant's
object is a 404 here too. A service's refusal is shown as a message, never a 500.
"""

import re
from functools import partial

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from guardian.shortcuts import get_users_with_perms

from common.ui import service_call
from tenants import forms, hooks, permissions, selectors, services
from tenants.approvals import can_retry
from tenants.models import RESOURCE_LABELS, RESOURCES, ApprovalStep, Membership, Quota, RosterEntry, User
from tenants.policies import RULE_MAXIMA, policy_for
from tenants.quotas import quota_rows
from tenants.roles import PlatformRole, TenantRole
from tenants.roster import roster_parse

PAGE_SIZE = 25


def _page(request, queryset, size=PAGE_SIZE):
    return Paginator(queryset, size).get_page(request.GET.get("page"))


# --- Tenant tree and members -----------------------------------------------------------------


@login_required
def tenant_tree(request):
    user = request.user
    tenants = list(selectors.tenant_list_for(user).select_related("parent").order_by("path"))
    if not tenants:
        raise Http404
    form = forms.TenantForm(request.POST or None)
    if request.method == "POST":
        parent = next((t for t in tenants if t.slug == request.POST.get("parent")), None)
        if form.is_valid() and (
            done := service_call(
                request,
                lambda: services.tenant_create(actor=user, parent=parent, **form.cleaned_data),
                success=_("已创建租户“%(name)s”。") % {"name": form.cleaned_data["name_zh"]},
                next="tenants:tree",
                form=form,
            )
        ):
            return done
    rows = [
        {
            "tenant": t,
            "indent": t.depth,
            "can_add_child": permissions.can_create_child(user, t),
            "can_manage": permissions.can_grant_roles(user, t) or permissions.holds_role_over(user, t, "auditor"),
            "can_toggle": permissions.can_deactivate_tenant(user, t),
        }
        for t in tenants
    ]
    return render(
        request,
        "tenants/tree.html",
        {"rows": rows, "form": form, "can_create_root": permissions.can_create_child(user, None)},
    )


@login_required
@require_POST
def tenant_toggle(request, slug):
    tenant = get_object_or_404(selectors.tenant_list_for(request.user), slug=slug)
    switched = _("已停用“%(name)s”。") if tenant.is_active else _("已启用“%(name)s”。")
    return service_call(
        request,
        lambda: services.tenant_update(actor=request.user, tenant=tenant, is_active=not tenant.is_active),
        success=switched % {"name": tenant.name},
        next="tenants:tree",
    )


@login_required
def members(request, slug):
    tenant = get_object_or_404(selectors.tenant_list_for(request.user), slug=slug)
    visible = selectors.membership_list_for(request.user).filter(tenant=tenant)
    can_grant = permissions.can_grant_roles(request.user, tenant)
    if not can_grant and not visible.exists() and not permissions.holds_role_over(request.user, tenant, "auditor"):
        raise Http404
    form = forms.MembershipForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        target = User.objects.filter(username=form.cleaned_data["username"], is_active=True).first()
        if target is None:
            form.add_error("username", _("用户不存在。"))
        elif done := service_call(
            request,
            lambda: services.membership_grant(
                actor=request.user, user=target, tenant=tenant, role=form.cleaned_data["role"]
            ),
            success=_("已授予 %(user)s 角色。") % {"user": target.get_full_name()},
            next=reverse("tenants:members", args=[slug]),
            form=form,
        ):
            return done
    query = request.GET.get("q", "").strip()
    if query:
        visible = visible.filter(Q(user__username__icontains=query) | Q(user__display_name__icontains=query))
    role = request.GET.get("role", "")
    if role in TenantRole.values:
        visible = visible.filter(role=role)
    return render(
        request,
        "tenants/members.html",
        {
            "tenant": tenant,
            "page": _page(request, sorted(visible, key=_member_order)),
            "form": form,
            "can_grant": can_grant,
            "query": query,
            "role": role,
            "roles": TenantRole.choices,
        },
    )


# Who a member list shows first: those who run the tenant, then teachers, then the rest.
_ROLE_RANK = {TenantRole.TENANT_ADMIN: 0, TenantRole.TEACHER: 1, TenantRole.FINANCE: 2, TenantRole.AUDITOR: 3}


def _natural(text: str) -> tuple:
    """学生2 before 学生10: digit runs compare as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def _member_order(membership) -> tuple:
    user = membership.user
    return (_ROLE_RANK.get(membership.role, 9), _natural(user.get_full_name()), _natural(user.username))


@login_required
@require_POST
def member_revoke(request, pk):
    membership = get_object_or_404(selectors.membership_list_for(request.user), pk=pk)
    return service_call(
        request,
        lambda: services.membership_revoke(actor=request.user, membership=membership),
        success=_("已撤销该角色。"),
        next=reverse("tenants:members", args=[membership.tenant.slug]),
    )


# --- Courses -------------------------------------------------------------------------------


@login_required
def course_list(request):
    user = request.user
    courses = (
        selectors.course_list_for(user)
        .annotate(roster_size=Count("roster", distinct=True))
        .prefetch_related("class_times")
        .order_by("tenant__path", "code")
    )
    query = request.GET.get("q", "").strip()
    if query:
        courses = courses.filter(Q(code__icontains=query) | Q(name__icontains=query))
    creatable = [
        m.tenant for m in selectors.memberships_of(user) if m.role in (TenantRole.TEACHER, TenantRole.TENANT_ADMIN)
    ]
    form = forms.CourseForm(request.POST or None)
    if request.method == "POST":
        tenant = next((t for t in creatable if t.slug == request.POST.get("tenant")), None)
        if tenant is None:
            form.add_error(None, _("请选择租户。"))
        elif form.is_valid():
            data = form.cleaned_data
            teacher = User.objects.filter(username=data["teacher"]).first() if data["teacher"] else user
            if teacher is None:
                form.add_error("teacher", _("用户不存在。"))
            elif done := service_call(
                request,
                lambda: services.course_create(
                    actor=user,
                    tenant=tenant,
                    code=data["code"],
                    name=data["name"],
                    teacher=teacher,
                    term_start=data["term_start"],
                    term_end=data["term_end"],
                ),
                success=lambda course: _("已创建课程 %(code)s。下一步：导入学生名单。") % {"code": course.code},
                next=lambda course: reverse("tenants:course", args=[course.pk]),
                form=form,
            ):
                return done
    page = _page(request, courses)
    _mark_courses_without_teacher(user, page)
    return render(
        request,
        "tenants/course_list.html",
        {"page": page, "query": query, "form": form, "creatable": creatable},
    )


def _mark_courses_without_teacher(user, page) -> None:
    """A course whose teacher lost the role (or the account) says so to the tenant admin, with the
    tenant's teachers to hand it to in one click (issue #14.5)."""
    page.object_list = list(page.object_list)
    teacher_ids = {course.teacher_id for course in page.object_list}
    # One query for the page: where each teacher still holds the teacher role (and is active).
    teaching = {}
    for user_id, path in Membership.objects.filter(
        user_id__in=teacher_ids, role=TenantRole.TEACHER, user__is_active=True, tenant__is_active=True
    ).values_list("user_id", "tenant__path"):
        teaching.setdefault(user_id, []).append(path)
    for course in page.object_list:
        paths = teaching.get(course.teacher_id, [])
        course.without_teacher = not any(course.tenant.path.startswith(path) for path in paths)
        course.reassignable = []
        if course.without_teacher and permissions.manages_tenant(user, course.tenant):
            course.reassignable = [
                m.user
                for m in course.tenant.memberships.filter(role=TenantRole.TEACHER, user__is_active=True)
                .select_related("user")
                .order_by("user__username")
            ]


@login_required
@require_POST
def course_reassign(request, pk):
    """Hand a course to another teacher of its tenant (the tenant admin's one click)."""
    course = get_object_or_404(selectors.course_list_for(request.user), pk=pk)
    teacher = User.objects.filter(username=request.POST.get("teacher", "")).first()
    if teacher is None:
        messages.error(request, _("用户不存在。"))
        return redirect("tenants:courses")
    return service_call(
        request,
        lambda: services.course_update(actor=request.user, course=course, teacher=teacher),
        success=_("课程 %(code)s 已改由 %(name)s 任教。") % {"code": course.code, "name": teacher.get_full_name()},
        next="tenants:courses",
    )


@login_required
def course_detail(request, pk):
    user = request.user
    course = get_object_or_404(selectors.course_list_for(user), pk=pk)
    can_manage = permissions.can_manage_course(user, course)
    times = [
        {"weekday": t.weekday, "start_time": t.start_time, "end_time": t.end_time} for t in course.class_times.all()
    ]
    # What the page shows besides the roster; a refused import or set of class times fills it in.
    state = {
        "import_form": forms.RosterImportForm(),
        "roster_errors": [],
        "formset": forms.ClassTimeFormSet(initial=times, prefix="ct"),
    }
    handler = _COURSE_ACTIONS.get(request.POST.get("action", "")) if request.method == "POST" and can_manage else None
    if handler is not None and (done := handler(request, course, state)):
        return done
    roster = RosterEntry.objects.filter(course=course).select_related("user").order_by("student_number")
    query = request.GET.get("q", "").strip()
    if query:
        roster = roster.filter(Q(student_number__icontains=query) | Q(user__display_name__icontains=query))
    return render(
        request,
        "tenants/course_detail.html",
        {
            "course": course,
            "can_manage": can_manage,
            "page": _page(request, roster, 50),
            "roster_total": course.roster.count(),
            "query": query,
            **state,
            "preview": request.session.get(_pending_key(course)) if can_manage and request.GET.get("preview") else None,
            "course_links": hooks.course_links(course=course, user=user),
            "is_teacher": permissions.teaches(user, course) or user.has_perm(permissions.COURSE_PERMISSION, course),
            "helpers": [
                u
                for u in get_users_with_perms(course, only_with_perms_in=["manage_course"], with_superusers=False)
                if u.pk != course.teacher_id
            ],
        },
    )


def _pending_key(course) -> str:
    return f"roster_import:{course.pk}"


def _roster_import(request, course, state: dict):
    """Step one of an import: the file is read and what it would change is shown (the students added and
    removed, the pool's seats); nothing changes until the teacher confirms (``_roster_import_confirm``)."""
    form = state["import_form"] = forms.RosterImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return None
    upload = form.cleaned_data["file"]
    replace = form.cleaned_data["replace"]

    def refused(request, exc):
        messages.error(request, exc.message)
        state["roster_errors"] = exc.detail.get("errors", [])

    def preview():
        rows = roster_parse(filename=upload.name, content=upload.read())
        result = services.course_roster_preview(actor=request.user, course=course, rows=rows, replace=replace)
        request.session[_pending_key(course)] = {"rows": rows, "replace": replace, "preview": result}
        return result

    return service_call(
        request,
        preview,
        next=reverse("tenants:course", args=[course.pk]) + "?preview=1",
        back=None,
        refused=refused,
    )


def _roster_import_confirm(request, course, state: dict):
    here = reverse("tenants:course", args=[course.pk])
    pending = request.session.pop(_pending_key(course), None)
    if pending is None or request.POST["action"] == "import_cancel":
        if pending is not None:
            messages.info(request, _("已取消导入，名单未改变。"))
        return redirect(here)
    rows = [tuple(row) for row in pending["rows"]]

    def refused(request, exc):
        messages.error(request, exc.message)
        state["roster_errors"] = exc.detail.get("errors", [])

    return service_call(
        request,
        lambda: services.course_roster_import(actor=request.user, course=course, rows=rows, replace=pending["replace"]),
        success=_import_message,
        next=here,
        back=None,
        refused=refused,
    )


def _import_message(counts: dict) -> str:
    message = (
        _(
            "名单已导入：新增 %(added)s 人（新建账号 %(created_accounts)s 个），"
            "未变 %(unchanged)s 人，移出 %(removed)s 人。"
        )
        % counts
    )
    pool = counts.get("pool")
    if pool:
        message += " " + _(
            "桌面池已同步：新增座位 %(added)s 个（其中 %(waiting)s 个暂未分配桌面），"
            "转交 %(handed_over)s 个，回收 %(retired)s 个。"
        ) % {**pool, "retired": pool["retired"] + pool["pending"]}
    return message


def _class_times_set(request, course, state: dict):
    formset = state["formset"] = forms.ClassTimeFormSet(request.POST, prefix="ct")
    if not formset.is_valid():
        return None
    slots = [
        (f.cleaned_data["weekday"], f.cleaned_data["start_time"], f.cleaned_data["end_time"])
        for f in formset.forms
        if f.cleaned_data and not f.cleaned_data.get("DELETE")
    ]
    return service_call(
        request,
        lambda: services.course_class_times_set(actor=request.user, course=course, slots=slots),
        success=_("上课时间已保存。"),
        next=reverse("tenants:course", args=[course.pk]),
        back=None,
    )


def _helper_grant(request, course, state: dict):
    here = reverse("tenants:course", args=[course.pk])
    helper = User.objects.filter(username=request.POST.get("username", "").strip()).first()
    if helper is None:
        messages.error(request, _("用户不存在。"))
        return redirect(here)
    revoke = request.POST["action"] == "ungrant"
    return service_call(
        request,
        lambda: services.course_grant(actor=request.user, course=course, user=helper, revoke=revoke),
        success=_("已更新协助管理的教师。"),
        next=here,
    )


def _roster_remove(request, course, state: dict):
    student = get_object_or_404(RosterEntry, course=course, user_id=request.POST.get("user")).user
    return service_call(
        request,
        lambda: services.course_roster_remove(actor=request.user, course=course, user=student),
        success=_("已将 %(name)s 移出名单。") % {"name": student.get_full_name()},
        next=reverse("tenants:course", args=[course.pk]),
    )


# The course page's forms, by their `action` field.
_COURSE_ACTIONS = {
    "import": _roster_import,
    "import_confirm": _roster_import_confirm,
    "import_cancel": _roster_import_confirm,
    "class_times": _class_times_set,
    "grant": _helper_grant,
    "ungrant": _helper_grant,
    "remove": _roster_remove,
}


# --- Quotas --------------------------------------------------------------------------------


@login_required
def quota_list(request):
    user = request.user
    quotas = selectors.quota_list_for(user).order_by("tenant__path", "scope", "id")
    scope = request.GET.get("scope", "")
    if scope in Quota.Scope.values:
        quotas = quotas.filter(scope=scope)
    page = _page(request, quotas)
    rows = quota_rows(page.object_list)
    for row in rows:
        quota = row["quota"]
        row["editable"] = permissions.can_set_quota(user, tenant=quota.tenant, scope=quota.scope)
        row["form"] = (
            forms.LimitsForm(initial_limits=quota.limits(), prefix=f"q{quota.pk}") if row["editable"] else None
        )
    tenants = [t for t in selectors.tenant_list_for(user) if permissions.can_set_quota(user, tenant=t, scope="course")]
    courses = selectors.course_list_for(user).filter(tenant__in=tenants) if tenants else []
    return render(
        request,
        "tenants/quota_list.html",
        {
            "page": page,
            "rows": rows,
            "scope": scope,
            "scopes": Quota.Scope.choices,
            "new_form": forms.LimitsForm(prefix="new"),
            "tenants": tenants,
            "courses": courses,
            "can_request": bool(_request_tenants(user)),
        },
    )


@login_required
@require_POST
def quota_edit(request, pk=None):
    user = request.user
    if pk is not None:
        quota = get_object_or_404(selectors.quota_list_for(user), pk=pk)
        form = forms.LimitsForm(request.POST, prefix=f"q{pk}")
        target = {"tenant": quota.tenant, "course": quota.course, "user": quota.user}
    else:
        form = forms.LimitsForm(request.POST, prefix="new")
        tenant = get_object_or_404(selectors.tenant_list_for(user), slug=request.POST.get("tenant", ""))
        course = user_obj = None
        if request.POST.get("course"):
            course = get_object_or_404(selectors.course_list_for(user), pk=request.POST["course"], tenant=tenant)
        elif request.POST.get("username"):
            user_obj = User.objects.filter(username=request.POST["username"]).first()
            if user_obj is None:
                messages.error(request, _("用户不存在。"))
                return redirect("tenants:quotas")
        target = {"tenant": tenant, "course": course, "user": user_obj}
    if not form.is_valid():
        messages.error(request, _("配额必须是非负整数。"))
        return redirect("tenants:quotas")
    return service_call(
        request,
        lambda: services.quota_set(actor=user, limits=form.limits(), **target),
        success=_("配额已保存。"),
        next="tenants:quotas",
    )


# --- Requests ------------------------------------------------------------------------------


def _with_steps(queryset):
    steps = Prefetch("steps", queryset=ApprovalStep.objects.select_related("decided_by").order_by("order"))
    return queryset.prefetch_related(steps)


def _request_tenants(user) -> list:
    """The tenants where `user` may file a request (teachers, tenant admins, students)."""
    roles = (TenantRole.TEACHER, TenantRole.TENANT_ADMIN, TenantRole.STUDENT)
    tenants = [m.tenant for m in selectors.memberships_of(user) if m.role in roles]
    return list({t.pk: t for t in tenants}.values())


@login_required
def request_list(request):
    """The approver's queue and the requester's history, with filters."""
    user = request.user
    tab = request.GET.get("tab") or ("queue" if _is_approver(user) else "mine")
    if tab == "queue":
        requests = selectors.request_queue_for(user)
    elif tab == "all":
        requests = selectors.request_list_for(user)
    else:
        tab = "mine"
        requests = selectors.request_list_for(user).filter(requester=user)
    filters = forms.RequestFilterForm(request.GET or None)
    if filters.is_valid():
        data = filters.cleaned_data
        if data["state"]:
            requests = requests.filter(state=data["state"])
        if data["kind"]:
            requests = requests.filter(kind=data["kind"])
        if data["q"]:
            requests = requests.filter(Q(title__icontains=data["q"]) | Q(requester__display_name__icontains=data["q"]))
    return render(
        request,
        "tenants/request_list.html",
        {
            "page": _page(request, _with_steps(requests)),
            "tab": tab,
            "filters": filters,
            "is_approver": _is_approver(user),
            "can_request": bool(_request_tenants(user)),
            "querystring": _querystring(request, exclude="page"),
        },
    )


def _querystring(request, *, exclude: str) -> str:
    params = request.GET.copy()
    params.pop(exclude, None)
    return params.urlencode()


def _is_approver(user) -> bool:
    return selectors.platform_role_of(user) == PlatformRole.SYSTEM_ADMIN or selectors.has_role(
        user, TenantRole.TENANT_ADMIN
    )


@login_required
def request_detail(request, pk):
    user = request.user
    target = get_object_or_404(_with_steps(selectors.request_list_for(user)), pk=pk)
    step = next((s for s in target.steps.all() if s.state == ApprovalStep.State.PENDING), None)
    return render(
        request,
        "tenants/request_detail.html",
        {
            "req": target,
            "amounts": [(RESOURCE_LABELS[n], getattr(target, n)) for n in RESOURCES if getattr(target, n)],
            "can_decide": permissions.can_decide_step(user, target, step),
            "can_cancel": target.requester_id == user.pk and target.state == target.State.PENDING,
            "can_retry": can_retry(user, target),
            "approve_form": forms.ApproveForm(),
            "reject_form": forms.RejectForm(),
        },
    )


@login_required
@require_POST
def request_action(request, pk, verb):
    user = request.user
    target = get_object_or_404(selectors.request_list_for(user), pk=pk)
    here = reverse("tenants:request", args=[pk])
    if verb == "approve":
        form = forms.ApproveForm(request.POST)
        form.is_valid()
        call, done = partial(services.request_approve, comment=form.cleaned_data.get("comment", "")), _("已批准。")
    elif verb == "reject":
        form = forms.RejectForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("驳回时请说明原因。"))
            return redirect(here)
        call, done = partial(services.request_reject, reason=form.cleaned_data["reason"]), _("已驳回。")
    elif verb == "cancel":
        call, done = services.request_cancel, _("申请已撤回。")
    elif verb == "retry":
        call, done = services.request_retry, _("已重新开始交付。")
    else:
        raise Http404
    return service_call(request, lambda: call(actor=user, request=target), success=done, next=here)


# --- Approval policy -------------------------------------------------------------------------


@login_required
def policy(request, slug):
    """The tenant's approval policy (its own or inherited): steps and auto-approval rules."""
    user = request.user
    tenant = get_object_or_404(selectors.tenant_list_for(user), slug=slug)
    can_edit = permissions.manages_tenant(user, tenant) or permissions.is_platform(user, PlatformRole.SYSTEM_ADMIN)
    effective = policy_for(tenant)
    own = effective if effective and effective.tenant_id == tenant.pk else None
    steps = [
        {k: getattr(s, k) for k in ("approver_role", "above_desktops", "above_vcpu", "above_gpus", "above_cost")}
        for s in (effective.steps.all() if effective else [])
    ]
    rules = [
        {k: getattr(r, k) for k in ("name", "kind", *RULE_MAXIMA)} for r in (effective.rules.all() if effective else [])
    ]
    name_form = forms.PolicyForm(request.POST or None, initial={"name": effective.name if effective else ""})
    step_set = forms.PolicyStepFormSet(request.POST or None, initial=steps, prefix="step")
    rule_set = forms.AutoRuleFormSet(request.POST or None, initial=rules, prefix="rule")
    if request.method == "POST":
        if not can_edit:
            raise Http404
        if name_form.is_valid() and step_set.is_valid() and rule_set.is_valid():
            kept = {"steps": _kept(step_set, "approver_role"), "rules": _kept(rule_set, "name")}
            done = service_call(
                request,
                lambda: services.policy_set(actor=user, tenant=tenant, name=name_form.cleaned_data["name"], **kept),
                success=_("审批策略已保存。"),
                next=reverse("tenants:policy", args=[slug]),
                back=None,
            )
            if done:
                return done
    return render(
        request,
        "tenants/policy.html",
        {
            "tenant": tenant,
            "effective": effective,
            "own": own,
            "can_edit": can_edit,
            "name_form": name_form,
            "step_set": step_set,
            "rule_set": rule_set,
        },
    )


def _kept(formset, required: str) -> list[dict]:
    """The formset's filled-in rows (``required`` set) not marked for deletion, without the DELETE flag."""
    rows = [f.cleaned_data for f in formset.forms]
    return [{k: v for k, v in r.items() if k != "DELETE"} for r in rows if r.get(required) and not r.get("DELETE")]


# --- Other requests: personal desktop, GPU environment, quota increase --------------------------


@login_required
def request_new(request):
    user = request.user
    tenants = _request_tenants(user)
    if not tenants:
        raise Http404
    kind = request.GET.get("kind", "quota_increase")
    can_ask_quota = any(permissions.can_request(user, t, "quota_increase") for t in tenants)
    if kind in ("personal_desktop", "gpu_environment") or not can_ask_quota:
        # A desktop is asked for with its image and flavor, on the portal's desktop request page.
        return redirect(f"{reverse('request-desktop')}?kind={kind if kind != 'quota_increase' else ''}")
    courses = [c for c in selectors.course_list_for(user) if permissions.can_manage_course(user, c)]
    initial = {"kind": "quota_increase", "course": request.GET.get("course")}
    form = forms.RequestForm(request.POST or None, courses=courses, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        course = next((c for c in courses if c.pk == data["course"]), None)
        chosen = request.POST.get("tenant") or (tenants[0].slug if len(tenants) == 1 else "")
        tenant = course.tenant if course else next((t for t in tenants if t.slug == chosen), None)
        if tenant is None:
            form.add_error(None, _("请选择租户。"))
        elif done := service_call(
            request,
            lambda: services.request_submit(
                actor=user,
                tenant=tenant,
                kind=data["kind"],
                title=data["title"],
                course=course,
                amounts=services.ResourceAmounts(**form.amounts()),
                reason=data["reason"],
            ),
            success=_("申请已提交。"),
            next=lambda created: reverse("tenants:request", args=[created.pk]),
            form=form,
        ):
            return done
    return render(request, "tenants/request_new.html", {"form": form, "tenants": tenants})
