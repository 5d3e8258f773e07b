"""Asking for one desktop: a personal desktop, or a GPU simulation environment (with or without a course).

The page offers only what will be fulfilled end to end: a kind with a fulfiller, images this
tenant may use, flavors it may use (GPU flavors for a GPU environment, the others for a personal
desktop). What the desktop takes from the quotas is planned by compute from the flavor, not
typed; the request page shows it. Students ask for personal desktops only.
"""

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from common.ui import service_call
from compute.models import ImageVersion
from compute.selectors import flavor_list_for, flavor_usable_by_tenant, image_list_for, image_visible_to_tenant
from portal.wizard import flavor_label
from tenants import hooks, permissions, selectors
from tenants.forms import BootstrapForm
from tenants.models import RequestKind
from tenants.quotas import ResourceAmounts
from tenants.roles import TenantRole
from tenants.services import request_submit

DESKTOP_KINDS = (RequestKind.PERSONAL_DESKTOP, RequestKind.GPU_ENVIRONMENT)


class DesktopRequestForm(BootstrapForm):
    kind = forms.ChoiceField(label=gettext_lazy("申请类型"))
    tenant = forms.ChoiceField(label=gettext_lazy("租户"))
    course = forms.TypedChoiceField(label=gettext_lazy("课程（可选）"), coerce=int, required=False, empty_value=None)
    image_version = forms.TypedChoiceField(label=gettext_lazy("镜像"), coerce=int)
    flavor = forms.TypedChoiceField(label=gettext_lazy("规格"), coerce=int)
    title = forms.CharField(label=gettext_lazy("标题"), max_length=200)
    reason = forms.CharField(
        label=gettext_lazy("说明（可选）"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, kinds, tenants, courses, versions, flavors, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(k, RequestKind(k).label) for k in kinds]
        self.fields["tenant"].choices = [(t.slug, t.name) for t in tenants]
        self.fields["course"].choices = [("", "—"), *((c.pk, f"{c.code} {c.name}") for c in courses)]
        self.fields["image_version"].choices = [(v.pk, f"{v.image.name} v{v.version}") for v in versions]
        self.fields["flavor"].choices = [(f.pk, flavor_label(f)) for f in flavors]
        if len(tenants) == 1:
            self.fields["tenant"].widget = forms.HiddenInput()
            self.fields["tenant"].initial = tenants[0].slug
        if not courses:
            del self.fields["course"]


def _tenants(user) -> list:
    roles = (TenantRole.TEACHER, TenantRole.TENANT_ADMIN, TenantRole.STUDENT)
    return list({m.tenant.pk: m.tenant for m in selectors.memberships_of(user) if m.role in roles}.values())


def _kinds(user, tenants, flavors) -> list[str]:
    """The kinds that will be fulfilled end to end and that the user may ask for somewhere."""
    kinds = []
    for kind in DESKTOP_KINDS:
        if hooks.fulfiller_for(kind) is None or not any(permissions.can_request(user, t, kind) for t in tenants):
            continue
        if kind == RequestKind.GPU_ENVIRONMENT and not any(f.gpus for f in flavors):
            continue  # no GPU flavor on this platform: not offered
        kinds.append(kind)
    return kinds


def _options(user, tenants):
    versions = [
        v
        for v in ImageVersion.objects.filter(image__in=image_list_for(user), status=ImageVersion.Status.READY)
        .select_related("image", "image__tenant")
        .order_by("image__name", "-version")
        if any(image_visible_to_tenant(v.image, tenant=t, course=None) for t in tenants)
    ]
    flavors = [
        f
        for f in flavor_list_for(user).filter(is_active=True).select_related("tenant")
        if any(flavor_usable_by_tenant(f, tenant=t) for t in tenants)
    ]
    return versions, flavors


@login_required
def desktop_request(request):
    user = request.user
    tenants = _tenants(user)
    if not tenants:
        raise Http404
    versions, flavors = _options(user, tenants)
    kinds = _kinds(user, tenants, flavors)
    if not kinds:
        raise Http404
    courses = [c for c in selectors.course_list_for(user) if permissions.can_manage_course(user, c)]
    wanted = request.GET.get("kind")
    initial = {"kind": wanted if wanted in kinds else kinds[0], "title": ""}
    form = DesktopRequestForm(
        request.POST or None,
        kinds=kinds,
        tenants=tenants,
        courses=courses,
        versions=versions,
        flavors=flavors,
        initial=initial,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        course = next((c for c in courses if c.pk == data.get("course")), None)
        tenant = course.tenant if course else next(t for t in tenants if t.slug == data["tenant"])
        done = service_call(
            request,
            lambda: request_submit(
                actor=user,
                tenant=tenant,
                kind=data["kind"],
                title=data["title"],
                course=course,
                amounts=ResourceAmounts(),
                payload={"image_version": data["image_version"], "flavor": data["flavor"]},
                reason=data["reason"],
            ),
            success=_("申请已提交。"),
            next=lambda created: reverse("tenants:request", args=[created.pk]),
            form=form,
        )
        if done:
            return done
    gpu_flavors = [f.pk for f in flavors if f.gpus]
    return render(request, "portal/desktop_request.html", {"form": form, "gpu_flavors": gpu_flavors})


__all__ = ["desktop_request"]
