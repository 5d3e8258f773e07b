"""Pages of tenants. Courses: the list, a course's page, its roster and class times."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from guardian.shortcuts import get_users_with_perms

from common.ui import service_call
from tenants import forms, hooks, permissions, selectors, services
from tenants.models import Membership, RosterEntry, User
from tenants.roles import TenantRole
from tenants.roster import roster_parse
from tenants.views.base import page as _page

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
        ) % {
            **pool,
            "retired": pool["retired"] + pool["pending"],
            # A spare seat given to a joining student is handed over too (its desktop reset first).
            "handed_over": pool["handed_over"] + pool.get("assigned", 0),
            "added": pool["added"] + pool.get("spares_added", 0),
        }
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
