"""The request wizard: a teacher asks for lab desktops for a course, guided step by step.

Step 1 picks the course; step 2 the image, size, seats (the roster by default) and weekly
class times. Prerequisites are checked as the teacher goes (htmx re-renders the checks on
every change): a roster, an image this tenant may use, a network, a size, and room in
the quotas. Each missing one is said in plain words with a link to where it is fixed.
Submitting calls tenants' request_submit; the approved request is fulfilled by compute.
"""

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from common.errors import ServiceError
from common.ui import service_call
from common.units import memory_label
from compute.capacity import room_for
from compute.classroom.models import DesktopPool, Seat
from compute.models import Flavor, ImageVersion
from compute.quota import flavor_share
from compute.selectors import flavor_list_for, flavor_usable_by_tenant, image_list_for, image_visible_to_tenant
from network.selectors import network_list_for
from tenants import permissions, selectors
from tenants.forms import BootstrapForm, ClassTimeFormSet
from tenants.models import Course, RequestKind
from tenants.quotas import QuotaExceeded, ResourceAmounts, quota_check
from tenants.selectors import platform_role_of
from tenants.services import course_class_times_set, request_submit

RESET_CHOICES = [
    ("persistent", gettext_lazy("整学期保留（学生的修改一直保留）")),
    ("reset_after_class", gettext_lazy("每次课后重置为黄金镜像")),
]


APPLY_CHOICES = [
    ("next_class", gettext_lazy("下次上课前生效（课上不打扰学生）")),
    ("now", gettext_lazy("批准后立即生效（换镜像会重置桌面，换规格会重启桌面）")),
]


@dataclass
class Check:
    ok: bool
    text: str
    link: str = ""
    link_text: str = ""


class WizardForm(BootstrapForm):
    image_version = forms.TypedChoiceField(label=gettext_lazy("镜像"), coerce=int)
    flavor = forms.TypedChoiceField(label=gettext_lazy("规格（每个桌面）"), coerce=int)
    seats = forms.IntegerField(label=gettext_lazy("座位数"), min_value=1, max_value=1000)
    persistence = forms.ChoiceField(label=gettext_lazy("桌面保留方式"), choices=RESET_CHOICES, initial="persistent")
    reason = forms.CharField(
        label=gettext_lazy("说明（可选）"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, versions, flavors, pool=None, **kwargs):
        super().__init__(*args, **kwargs)
        if pool is not None:  # a change of the course's pool: when it takes effect is the teacher's choice
            self.fields["apply"] = forms.ChoiceField(label=gettext_lazy("何时生效"), choices=APPLY_CHOICES)
        self.fields["image_version"].choices = [(v.pk, f"{v.image.name} v{v.version}") for v in versions]
        self.fields["flavor"].choices = [(f.pk, flavor_label(f)) for f in flavors]


def flavor_label(flavor: Flavor) -> str:
    """The flavor as people choose it."""
    # The flavor's own memory, as every page and the quota show it (common.units).
    label = _("%(name)s：%(cpu)s vCPU，%(mem)s 内存，%(disk)s GiB 系统盘") % {
        "name": flavor.name,
        "cpu": flavor.vcpus,
        "mem": memory_label(flavor.memory_mib),
        "disk": flavor.disk_gib,
    }
    return label + (
        ngettext("，%(n)s 块 GPU", "，%(n)s 块 GPU", flavor.gpus) % {"n": flavor.gpus} if flavor.gpus else ""
    )


def seat_amounts(flavor: Flavor, seats: int) -> ResourceAmounts:
    """What the desktops take from the quotas: compute's own count (compute.quota, one source)."""
    return flavor_share(flavor, count=seats)


def _url(name: str, *args) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _courses(user):
    courses = (
        selectors.course_list_for(user)
        .annotate(roster_size=Count("roster", distinct=True))
        .select_related("tenant", "teacher")
        .order_by("code")
    )
    return [c for c in courses if permissions.can_manage_course(user, c)]


def _options(user, course: Course):
    versions = [
        v
        for v in ImageVersion.objects.filter(image__in=image_list_for(user), status=ImageVersion.Status.READY)
        .select_related("image", "image__tenant")
        .order_by("image__name", "-version")
        if image_visible_to_tenant(v.image, tenant=course.tenant, course=course)
    ]
    flavors = [
        f
        for f in flavor_list_for(user).filter(is_active=True).select_related("tenant")
        if flavor_usable_by_tenant(f, tenant=course.tenant)
    ]
    networks = [n for n in network_list_for(user) if n.tenant_id in (None, course.tenant_id)]
    return versions, flavors, networks


def _prerequisite_checks(user, course, versions, flavors, networks) -> list[Check]:
    is_sysadmin = platform_role_of(user) == "system_admin"
    course_url = reverse("tenants:course", args=[course.pk])
    return [
        Check(
            True,
            ngettext("课程名单有 %(n)s 名学生。", "课程名单有 %(n)s 名学生。", course.roster_size)
            % {"n": course.roster_size},
        )
        if course.roster_size
        else Check(
            False, _("这门课的名单还是空的：先导入学生名单，座位数默认等于名单人数。"), course_url, _("去导入名单")
        ),
        Check(True, ngettext("有 %(n)s 个镜像可用。", "有 %(n)s 个镜像可用。", len(versions)) % {"n": len(versions)})
        if versions
        else Check(
            False,
            _("还没有本院系可用的镜像。请联系系统管理员上传镜像，或为本院系开放一个镜像。"),
            _url("compute:image-list") if is_sysadmin else "",
            _("管理镜像"),
        ),
        Check(True, _("有可用网络。"))
        if networks
        else Check(
            False,
            _("本院系还没有网络，桌面将无法联网。请联系系统管理员为本院系创建网络。"),
            _url("network:list") if is_sysadmin else "",
            _("管理网络"),
        ),
        Check(True, ngettext("有 %(n)s 种规格可选。", "有 %(n)s 种规格可选。", len(flavors)) % {"n": len(flavors)})
        if flavors
        else Check(
            False,
            _("没有可用的桌面规格。请联系系统管理员。"),
            _url("compute:flavor-list") if is_sysadmin else "",
            _("管理规格"),
        ),
    ]


def _new_desktops(pool: DesktopPool | None, flavor: Flavor, seats: int) -> int:
    """How many desktops the hosts must find room for: every seat for a new pool or a new flavor,
    the added seats otherwise."""
    if pool is None or pool.flavor_id != flavor.pk:
        return seats
    return max(0, seats - pool.seats.filter(state=Seat.State.ACTIVE).count())


def _capacity_check(course, pool, version, flavor, seats) -> Check:
    wanted = _new_desktops(pool, flavor, seats)
    room = room_for(flavor=flavor, image_version=version, wanted=wanted) if wanted else 0
    if room >= wanted:
        return Check(True, _("主机容量充足：可以再放下 %(n)s 个这种规格的桌面。") % {"n": wanted})
    return Check(
        False,
        _("主机容量不足：需要新建 %(wanted)s 个桌面，目前只放得下 %(room)s 个。") % {"wanted": wanted, "room": room}
        + _("请减少座位、换小一些的规格，或联系系统管理员扩容。"),
    )


def _quota_checks(course, pool, flavor, seats) -> list[Check]:
    shortfalls = quota_check(tenant=course.tenant, course=course, amounts=_more_amounts(pool, flavor, seats))
    if not shortfalls:
        return [Check(True, _("配额充足：%(seats)s 个桌面可以容纳。") % {"seats": seats})]
    increase = f"{reverse('tenants:request-new')}?kind=quota_increase&course={course.pk}"
    return [Check(False, s.message, increase, _("申请增加配额")) for s in shortfalls]


def _more_amounts(pool: DesktopPool | None, flavor: Flavor, seats: int) -> ResourceAmounts:
    """What the pool will take beyond what it takes now (all of it for a new pool)."""
    wanted = seat_amounts(flavor, seats)
    if pool is None:
        return wanted
    now = seat_amounts(pool.flavor, pool.seats.filter(state=Seat.State.ACTIVE).count())
    return ResourceAmounts(**{k: max(0, v - getattr(now, k)) for k, v in wanted.as_dict().items()})


def _checks(user, course, options, pool, version=None, flavor=None, seats=None) -> list[Check]:
    versions, flavors, networks = options
    checks = _prerequisite_checks(user, course, versions, flavors, networks)
    if pool is not None:
        checks.append(
            Check(
                True,
                _("这门课已有桌面池（%(name)s）：表单已填入它现在的设置，提交后按新设置调整它。") % {"name": pool.name},
                _url("classroom:pool", pool.pk),
                _("打开桌面池"),
            )
        )
    if flavor is not None and seats:
        checks += _quota_checks(course, pool, flavor, seats)
        checks.append(_capacity_check(course, pool, version, flavor, seats))
    return checks


def _class_time_initial(course: Course) -> list[dict]:
    return [
        {"weekday": t.weekday, "start_time": t.start_time, "end_time": t.end_time} for t in course.class_times.all()
    ]


def _initial(course: Course, pool: DesktopPool | None) -> dict:
    if pool is None:
        return {"seats": course.roster_size or 1}
    seats = pool.seats.filter(state=Seat.State.ACTIVE).count()
    return {
        "image_version": pool.image_version_id,
        "flavor": pool.flavor_id,
        "seats": max(seats, course.roster_size),
        "persistence": pool.persistence,
        "apply": "next_class",
    }


def _chosen(form, data, options, course, pool):
    """The version, flavor and seats the checks look at: what was typed, or the form's first choice."""
    versions, flavors, _networks = options
    if data is not None and form.is_valid():
        version = next((v for v in versions if v.pk == form.cleaned_data["image_version"]), None)
        return (
            version,
            next((f for f in flavors if f.pk == form.cleaned_data["flavor"]), None),
            form.cleaned_data["seats"],
        )
    initial = _initial(course, pool)
    flavor = next((f for f in flavors if f.pk == initial.get("flavor")), flavors[0] if flavors else None)
    version = next((v for v in versions if v.pk == initial.get("image_version")), versions[0] if versions else None)
    return version, flavor, initial["seats"] if flavor else None


def _course_or_404(user, course_id):
    course = next((c for c in _courses(user) if str(c.pk) == str(course_id)), None)
    if course is None:
        raise Http404
    return course


@login_required
def request_wizard(request):
    user = request.user
    course_id = request.POST.get("course") or request.GET.get("course")
    if not course_id:
        return render(request, "portal/wizard_course.html", {"courses": _courses(user), "step": 1})
    course = _course_or_404(user, course_id)
    pool = DesktopPool.objects.filter(course=course, state=DesktopPool.State.ACTIVE).select_related("flavor").first()
    options = _options(user, course)
    data = request.POST if request.method == "POST" else (request.GET if "flavor" in request.GET else None)
    form = WizardForm(data, versions=options[0], flavors=options[1], pool=pool, initial=_initial(course, pool))
    formset = ClassTimeFormSet(
        request.POST if request.method == "POST" else None, initial=_class_time_initial(course), prefix="ct"
    )
    version, flavor, seats = _chosen(form, data, options, course, pool)
    checks = _checks(user, course, options, pool, version, flavor, seats)
    context = {"course": course, "pool": pool, "form": form, "formset": formset, "checks": checks, "step": 2}
    if request.headers.get("HX-Request") and request.method == "GET":
        return render(request, "portal/wizard_checks.html", context)
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        done = _submit_or_refuse(request, course, pool, form, formset, options[0], flavor, context)
        if done:
            return done
    return render(request, "portal/wizard.html", context)


def _submit_or_refuse(request, course, pool, form, formset, versions, flavor, context):
    checks = context["checks"]
    if any(not c.ok for c in checks):
        messages.error(request, _("还有未满足的前提条件，请先按提示处理。"))
        return None

    def refused(request, exc: ServiceError) -> None:
        if isinstance(exc, QuotaExceeded):  # each shortfall becomes a check with a link to the quotas
            context["checks"] = checks + [
                Check(False, s.message, reverse("tenants:quotas"), _("查看配额")) for s in exc.shortfalls
            ]
        messages.error(request, exc.message)

    user = request.user
    return service_call(
        request,
        lambda: _submit(user, course, pool, form.cleaned_data, formset, versions, flavor),
        success=_("申请已提交。批准后按新的设置创建或调整桌面，结果会通过邮件通知您。"),
        next=lambda created: reverse("tenants:request", args=[created.pk]),
        back=None,
        refused=refused,
    )


def _slots(formset) -> list[tuple]:
    return sorted(
        (f.cleaned_data["weekday"], f.cleaned_data["start_time"], f.cleaned_data["end_time"])
        for f in formset.forms
        if f.cleaned_data and not f.cleaned_data.get("DELETE")
    )


def _submit(user, course, pool, data, formset, versions, flavor):
    from tenants.models import ClassTime

    slots = _slots(formset)
    if slots != sorted((t.weekday, t.start_time, t.end_time) for t in course.class_times.all()):
        course_class_times_set(actor=user, course=course, slots=slots)
    version = next(v for v in versions if v.pk == data["image_version"])
    seats = data["seats"]
    labels = [str(ClassTime(weekday=w, start_time=s, end_time=e)) for w, s, e in slots]
    payload = {
        "image_version": version.pk,
        "image_name": str(version),
        "flavor": flavor.pk,
        "flavor_name": flavor.name,
        "seats": seats,
        "persistence": data["persistence"],
        "lead_minutes": pool.lead_minutes if pool else 15,
        "shutdown_after_minutes": pool.shutdown_after_minutes if pool else 10,
        "class_times": [
            {"weekday": w, "start_time": s.strftime("%H:%M"), "end_time": e.strftime("%H:%M"), "label": label}
            for (w, s, e), label in zip(slots, labels, strict=True)
        ],
    }
    if pool is not None:
        payload.update({"pool": pool.pk, "apply": data.get("apply") or "next_class"})
    title = (
        _("%(code)s 桌面池调整（%(seats)s 座）") if pool is not None else _("%(code)s 课程桌面（%(seats)s 座）")
    ) % {"code": course.code, "seats": seats}
    return request_submit(
        actor=user,
        tenant=course.tenant,
        course=course,
        kind=RequestKind.GPU_ENVIRONMENT if flavor.gpus else RequestKind.COURSE_DESKTOPS,
        title=title,
        amounts=seat_amounts(flavor, seats),
        payload=payload,
        reason=data["reason"],
    )
