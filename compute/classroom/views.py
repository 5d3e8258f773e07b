"""Pages of the classroom: my desktops, the teacher's pools (wizard, progress, seat grid, schedule,
authoring) and the noVNC console page. Same services as the API; refusals become messages."""

import datetime
from functools import partial

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, prefetch_related_objects
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import conditional_escape, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from common.errors import ServiceError
from common.links import pk_url
from common.paging import Paginator
from common.ui import service_call
from compute import selectors as compute_selectors
from compute import services as compute_services
from compute.classroom import selectors, services
from compute.classroom.models import AuthoringSession, DesktopPool, ScheduleException, Seat
from compute.models import Desktop, ImageVersion
from tenants.models import Course
from tenants.permissions import can_manage_course
from tenants.selectors import course_list_for


def _refused(request, exc: ServiceError) -> None:
    messages.error(request, exc.message)
    for shortfall in (exc.detail or {}).get("shortfalls", []):
        messages.error(request, shortfall.get("message", ""))


def _call(request, fn, **kwargs):
    """``service_call`` with each quota shortfall of a refusal as a message of its own."""
    return service_call(request, fn, refused=_refused, **kwargs)


@login_required
def my_desktops(request):
    groups = selectors.my_desktops(request.user)
    for group in groups:
        for desktop in group.desktops:
            desktop.console_unavailable = selectors.console_unavailable(desktop)
    teaching = selectors.pool_list_for(request.user).exists()
    return render(request, "classroom/my_desktops.html", {"groups": groups, "teaching": teaching})


@login_required
@require_POST
def desktop_action(request, pk):
    """A student's own start / restart (stop too, for the teacher's convenience)."""
    desktop = get_object_or_404(compute_selectors.desktop_list_for(request.user), pk=pk)
    service = {
        "start": compute_services.desktop_start,
        "reboot": compute_services.desktop_reboot,
        "stop": compute_services.desktop_stop,
    }.get(request.POST.get("action"))
    if service is None:
        raise Http404
    return _call(
        request,
        lambda: service(actor=request.user, desktop=desktop),
        success=_("已提交，桌面状态稍后更新。"),
        next="classroom:mine",
    )


@login_required
def console(request, pk):
    desktop = get_object_or_404(compute_selectors.desktop_list_for(request.user), pk=pk)
    if not services.can_open_console(request.user, desktop):
        raise Http404
    return render(
        request, "classroom/console.html", {"desktop": desktop, "shutdown_at": services.shutdown_notice(desktop)}
    )


@login_required
def shutdown_notice(request, pk):
    """The console page's warning that the schedule will power the desktop off (htmx polls it)."""
    desktop = get_object_or_404(compute_selectors.desktop_list_for(request.user), pk=pk)
    if not services.can_open_console(request.user, desktop):
        raise Http404
    return render(
        request,
        "classroom/_shutdown_notice.html",
        {"desktop": desktop, "shutdown_at": services.shutdown_notice(desktop)},
    )


# --- teacher pages ----------------------------------------------------------------------------


@login_required
def pool_list(request):
    search = request.GET.get("q", "").strip()[:100]
    pools = selectors.pool_list_for(request.user, search=search)
    page = Paginator(pools, 20).get_page(request.GET.get("page"))
    can_create = any(can_manage_course(request.user, c) for c in course_list_for(request.user)[:50])
    return render(request, "classroom/pool_list.html", {"page": page, "search": search, "can_create": can_create})


class PoolRequestForm(forms.Form):
    course = forms.ModelChoiceField(queryset=Course.objects.none(), label=gettext_lazy("课程"))
    image_version = forms.ModelChoiceField(queryset=ImageVersion.objects.none(), label=gettext_lazy("镜像"))
    flavor = forms.ModelChoiceField(queryset=None, label=gettext_lazy("规格"))
    persistence = forms.ChoiceField(
        choices=DesktopPool.Persistence.choices, label=gettext_lazy("保留策略"), initial="persistent"
    )
    lead_minutes = forms.IntegerField(min_value=0, max_value=240, initial=15, label=gettext_lazy("课前开机（分钟）"))
    shutdown_after_minutes = forms.IntegerField(
        min_value=0, max_value=240, initial=10, label=gettext_lazy("课后关机（分钟）")
    )
    shutdown_deadline_minutes = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=480,
        initial=30,
        label=gettext_lazy("课后最迟关机（分钟）"),
        help_text=gettext_lazy("有学生仍在连接时推迟关机并提醒，但最迟在下课后这么多分钟强制关机。"),
    )
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label=gettext_lazy("说明"))

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        managed = [c.pk for c in course_list_for(user) if can_manage_course(user, c)]
        self.fields["course"].queryset = Course.objects.filter(pk__in=managed).order_by("code")
        self.fields["image_version"].queryset = compute_selectors.image_version_list_for(user).filter(
            status=ImageVersion.Status.READY
        )
        self.fields["flavor"].queryset = compute_selectors.flavor_list_for(user)
        for field in self.fields.values():
            field.widget.attrs.setdefault(
                "class", "form-select" if isinstance(field, forms.ChoiceField) else "form-control"
            )


@login_required
def pool_new(request):
    """The wizard: course (its roster gives the seats), image, size, policy → an approval request."""
    form = PoolRequestForm(request.user, request.POST or None, initial={"course": request.GET.get("course")})
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        done = _call(
            request,
            lambda: services.course_request_submit(
                actor=request.user,
                course=values["course"],
                image_version=values["image_version"],
                flavor=values["flavor"],
                persistence=values["persistence"],
                lead_minutes=values["lead_minutes"],
                shutdown_after_minutes=values["shutdown_after_minutes"],
                shutdown_deadline_minutes=values["shutdown_deadline_minutes"],
                reason=values["reason"],
            ),
            success=_submitted,
            next="classroom:pools",
            back=None,
        )
        if done:
            return done
    missing = []
    if not form.fields["course"].queryset.exists():
        missing.append(_("您还没有可管理的课程，请先创建课程并导入名单。"))
    if not form.fields["image_version"].queryset.exists():
        missing.append(_("还没有可用的镜像，请联系系统管理员上传镜像。"))
    return render(request, "classroom/pool_new.html", {"form": form, "missing": missing})


def _submitted(req) -> str:
    if req.state == req.State.APPROVED:
        return _("申请已自动批准，桌面池正在创建。")
    return _("申请已提交，等待审批：%(title)s") % {"title": req.title}


# What the seat grid (classroom/_seats.html, _seat_cards, the progress) reads of a seat's student, desktop
# and flavor: ~35 columns of a desktop (JSON, dates) converted for 60 seats on every 3-s poll cost the
# grid's read more than its query. A column missing here is read once per seat (the pool page's query
# count test, every kind of card, catches it).
_GRID_COLUMNS = (
    *("id", "pool", "student", "desktop", "state", "error", "flavor_restart"),
    *("student__username", "student__first_name", "student__last_name", "student__display_name"),
    *("desktop__state", "desktop__flavor", "desktop__image_version", "desktop__gpus", "desktop__gpu_device"),
    *("desktop__error_reason", "desktop__last_error", "desktop__flavor__name"),
)


def _pool_context(request, pool):
    seats = list(selectors.seat_list_for(request.user, pool=pool).only(*_GRID_COLUMNS))
    connected = services.connected_desktop_ids([s.desktop_id for s in seats if s.desktop_id])
    can_manage = services.can_manage_pool(request.user, pool)
    # Whom a spare seat can be given to: one query, however many seats.
    free_students = services.seats_free_students(pool) if can_manage and any(s.is_spare for s in seats) else []
    _seat_cards(seats, pool=pool, connected=connected, can_manage=can_manage, free_students=free_students)
    return {
        "pool": pool,
        "seats": seats,
        "progress": selectors.pool_progress(seats),
        "can_manage": can_manage,
        # Desktops still on the pool's previous flavor: they take the new one at the next class.
        "flavor_pending": sum(1 for s in seats if s.flavor_pending),
        # The same <option>s under every spare seat: written once.
        "student_options": format_html_join(
            "", '<option value="{}">{}</option>', ((s.pk, s.get_full_name() or s.username) for s in free_students)
        ),
    }


def _seat_cards(seats, *, pool, connected, can_manage, free_students) -> None:
    """What each seat's card in classroom/_seats.html shows and offers, worked out here once per page:
    the same in tags ({% url %}, get_state_display, {% blocktranslate %}, an include) cost the grid
    about 0.3 ms a seat, paid by a pool of 60 seats on every poll of the grid."""
    action_url = pk_url("classroom:seat-action")
    console_url = pk_url("classroom:console")
    state_labels = {value: str(label) for value, label in Desktop.State.choices}
    reset_confirm = _("确定重置 %(name)s 的桌面？桌面上的所有改动都会清除。")
    if pool.leaver_disks == DesktopPool.LeaverDisks.DELETE:
        take_back_confirm = _(
            "收回 %(name)s 的座位？桌面系统盘将重置为黄金镜像，数据盘将被擦除并删除，座位变为空闲座位。"
            "该学生仍在名单上，下次同步名单时会重新分到座位。"
        )
    else:
        take_back_confirm = _(
            "收回 %(name)s 的座位？桌面系统盘将重置为黄金镜像，数据盘卸载后保留给该学生，座位变为空闲座位。"
            "该学生仍在名单上，下次同步名单时会重新分到座位。"
        )
    for seat in seats:
        desktop = seat.desktop
        live = desktop is not None and desktop.is_live
        active = seat.state == Seat.State.ACTIVE
        seat.action_url = action_url(seat.pk)
        seat.connected = seat.desktop_id in connected
        seat.flavor_pending = desktop is not None and desktop.flavor_id != pool.flavor_id
        seat.image_pending = desktop is not None and desktop.image_version_id != pool.image_version_id
        # As {% blocktranslate %} writes them: the translation as it is, the name escaped.
        name = {"name": conditional_escape(seat.holder_name)}
        seat.reset_confirm = mark_safe(reset_confirm % name) if can_manage and live else ""  # noqa: S308
        can_take_back = can_manage and not seat.is_spare and active and live
        seat.take_back_confirm = mark_safe(take_back_confirm % name) if can_take_back else ""  # noqa: S308
        seat.assignable = can_manage and seat.is_spare and active and bool(free_students) and (desktop is None or live)
        if desktop is not None:
            desktop.state_label = state_labels.get(desktop.state, desktop.state)
            desktop.console_url = console_url(desktop.pk)


@login_required
def pool_detail(request, pk):
    pool = get_object_or_404(selectors.pool_list_for(request.user, counts=False), pk=pk)
    # The schedule's services and the page read the same skipped classes and class times: once, here.
    exceptions = ScheduleException.objects.select_related("class_time").order_by("date")
    prefetch_related_objects([pool], Prefetch("exceptions", queryset=exceptions), "course__class_times")
    context = _pool_context(request, pool)
    now = timezone.now()
    context.update(
        {
            "in_class": services.class_in_progress(pool, now),
            "upcoming": services.classes_between(pool, now, now + datetime.timedelta(days=14))[:8],
            "exceptions": pool.exceptions.all()[:50],
            "class_times": list(pool.course.class_times.all()),
            "sessions": pool.sessions.select_related("class_time")[:5],
            "authoring": selectors.authoring_list_for(request.user, pool=pool)[:10],
            "versions": compute_selectors.image_version_list_for(request.user).filter(status=ImageVersion.Status.READY),
        }
    )
    return render(request, "classroom/pool_detail.html", context)


@login_required
def pool_seats(request, pk):
    """The seat grid alone, for htmx polling while the pool provisions."""
    pool = get_object_or_404(selectors.pool_list_for(request.user, counts=False), pk=pk)
    return render(request, "classroom/_seats.html", _pool_context(request, pool))


@login_required
@require_POST
def pool_action(request, pk):
    pool = get_object_or_404(selectors.pool_list_for(request.user, counts=False), pk=pk)
    action = request.POST.get("action")
    return _call(request, lambda: _pool_act(request, pool, action), next=reverse("classroom:pool", args=[pool.pk]))


def _pool_act(request, pool, action) -> None:
    """One button of the pool page: its service call, then what it did as a message (no such button: 404)."""
    if action == "start":
        n = services.pool_power(actor=request.user, pool=pool, verb=action)
        messages.success(request, ngettext("正在开启 %(n)s 台桌面。", "正在开启 %(n)s 台桌面。", n) % {"n": n})
    elif action == "stop":
        n = services.pool_power(actor=request.user, pool=pool, verb=action)
        messages.success(request, ngettext("正在关闭 %(n)s 台桌面。", "正在关闭 %(n)s 台桌面。", n) % {"n": n})
    elif action == "reset":
        n = services.pool_reset(actor=request.user, pool=pool)
        messages.success(request, ngettext("正在重置 %(n)s 台桌面。", "正在重置 %(n)s 台桌面。", n) % {"n": n})
    elif action == "retry":
        n = services.pool_retry_failed(actor=request.user, pool=pool)
        messages.success(request, ngettext("正在重试 %(n)s 台桌面。", "正在重试 %(n)s 台桌面。", n) % {"n": n})
    elif action == "sync":
        _sync_messages(request, services.pool_sync_roster(actor=request.user, pool=pool))
    elif action == "settings":
        services.pool_settings_update(
            actor=request.user,
            pool=pool,
            persistence=request.POST.get("persistence") or None,
            leaver_disks=request.POST.get("leaver_disks") or None,
            lead_minutes=_int(request.POST.get("lead_minutes")),
            shutdown_after_minutes=_int(request.POST.get("shutdown_after_minutes")),
            shutdown_deadline_minutes=_int(request.POST.get("shutdown_deadline_minutes")),
        )
        messages.success(request, _("已保存。"))
    else:
        raise Http404


def _sync_messages(request, result: services.SyncResult) -> None:
    """One whole sentence per kind of change, each with its own plural (no sentence built of pieces)."""
    sentences = [
        (result.added, ngettext("%(n)s 名新学生分配到了新桌面。", "%(n)s 名新学生分配到了新桌面。", result.added)),
        (
            result.spares_added,
            ngettext("新增 %(n)s 个空闲座位。", "新增 %(n)s 个空闲座位。", result.spares_added),
        ),
        (
            result.assigned,
            ngettext(
                "%(n)s 个空闲座位已重置并分配给新学生。", "%(n)s 个空闲座位已重置并分配给新学生。", result.assigned
            ),
        ),
        (
            result.handed_over,
            ngettext("%(n)s 台桌面已重置并移交给新学生。", "%(n)s 台桌面已重置并移交给新学生。", result.handed_over),
        ),
        (
            result.freed,
            ngettext(
                "%(n)s 台已离开学生的桌面已重置，留作空闲座位。",
                "%(n)s 台已离开学生的桌面已重置，留作空闲座位。",
                result.freed,
            ),
        ),
        (
            result.retired,
            ngettext("%(n)s 台已离开学生的桌面已回收。", "%(n)s 台已离开学生的桌面已回收。", result.retired),
        ),
        (
            result.pending,
            ngettext(
                "%(n)s 台已离开学生的桌面正忙，稍后自动回收。",
                "%(n)s 台已离开学生的桌面正忙，稍后自动回收。",
                result.pending,
            ),
        ),
    ]
    changes = [text % {"n": n} for n, text in sentences if n]
    if not changes:
        messages.info(request, _("名单没有变化。"))
    for text in changes:
        messages.success(request, text)


def _int(value):
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return -1  # the service refuses it with a message


@login_required
@require_POST
def seat_action(request, pk):
    try:
        seat = selectors.seat_get_for(request.user, pk=pk)
    except Exception as exc:  # noqa: BLE001 - DoesNotExist of a scoped queryset: not yours
        raise Http404 from exc
    action = request.POST.get("action")
    if action == "reset":
        call = services.seat_reset
    elif action in ("start", "stop", "reboot"):
        call = partial(services.seat_power, verb=action)
    elif action == "retry":
        call = services.seat_retry
    elif action in ("assign", "take_back"):
        return _seat_hand(request, seat, action)
    else:
        raise Http404
    return _call(
        request,
        lambda: call(actor=request.user, seat=seat),
        success=_("已提交：%(student)s") % {"student": seat.holder_name},
        next=reverse("classroom:pool", args=[seat.pool_id]),
    )


def _seat_hand(request, seat, action):
    """A spare seat given to a roster student, or a student's seat taken back as a spare."""
    if action == "assign":

        def call():
            student = services.roster_student(seat.pool, pk=_int(request.POST.get("student")))
            services.seat_assign(actor=request.user, seat=seat, student=student)
            return _("空闲座位已分配给 %(student)s，桌面已重置为黄金镜像。") % {
                "student": student.get_full_name() or student.username
            }

    else:

        def call():
            name = seat.holder_name
            services.seat_take_back(actor=request.user, seat=seat)
            return _("已收回 %(student)s 的座位，桌面已重置，现为空闲座位。") % {"student": name}

    return _call(request, call, success=lambda text: text, next=reverse("classroom:pool", args=[seat.pool_id]))


@login_required
@require_POST
def pool_skip(request, pk):
    pool = get_object_or_404(selectors.pool_list_for(request.user, counts=False), pk=pk)
    try:
        date = datetime.date.fromisoformat(request.POST.get("date", ""))
    except ValueError:
        messages.error(request, _("请填写正确的日期。"))
        return redirect("classroom:pool", pk=pool.pk)
    return _call(
        request,
        lambda: services.schedule_exception_add(
            actor=request.user,
            pool=pool,
            date=date,
            class_time_id=request.POST.get("class_time") or None,
            reason=request.POST.get("reason", ""),
        ),
        success=_("已停课：%(date)s") % {"date": date},
        next=reverse("classroom:pool", args=[pool.pk]),
    )


@login_required
@require_POST
def pool_skip_remove(request, pk, exception_pk):
    pool = get_object_or_404(selectors.pool_list_for(request.user, counts=False), pk=pk)
    exception = get_object_or_404(ScheduleException, pk=exception_pk, pool=pool)
    return _call(
        request,
        lambda: services.schedule_exception_remove(actor=request.user, exception=exception),
        next=reverse("classroom:pool", args=[pool.pk]),
    )


@login_required
@require_POST
def authoring_start(request, pk):
    pool = get_object_or_404(selectors.pool_list_for(request.user, counts=False), pk=pk)
    version = (
        compute_selectors.image_version_list_for(request.user).filter(pk=request.POST.get("image_version")).first()
    )
    if version is None:
        messages.error(request, _("未知镜像。"))
        return redirect("classroom:pool", pk=pool.pk)
    return _call(
        request,
        lambda: services.authoring_start(
            actor=request.user, course=pool.course, image_version=version, flavor=pool.flavor
        ),
        success=_("制作用桌面正在创建，开机后可通过控制台安装软件。"),
        next=reverse("classroom:pool", args=[pool.pk]),
    )


@login_required
@require_POST
def authoring_publish(request, pk):
    session = get_object_or_404(
        AuthoringSession.objects.filter(course__in=course_list_for(request.user).values("pk")), pk=pk
    )
    pool = DesktopPool.objects.filter(course=session.course).order_by("-id").first()
    return _call(
        request,
        lambda: services.authoring_publish(actor=request.user, session=session),
        success=_("正在发布新版本；桌面池将在下次课后重置时换用新版本。"),
        next=reverse("classroom:pool", args=[pool.pk]) if pool else "classroom:pools",
    )
