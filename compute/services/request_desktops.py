"""Requests compute fulfils itself: a personal desktop, or a GPU simulation environment (one GPU
desktop for the requester, with or without a course), planned at submit and made once approved.

tenants calls these through its hooks (registered in compute.apps): the planner checks the
payload and says what the desktop will really take from the quotas (the flavor's share, never
amounts the requester typed); the fulfiller makes the desktop for the requester, placed on a
cluster of the flavor's kind (a GPU flavor goes to a GPU cluster); the observer reports to the
request when the desktop runs or fails, so a request is delivered only when its desktop runs.
"""

from django.db import transaction
from django.utils.translation import gettext as _

from common.errors import InvalidInput
from compute import selectors
from compute.models import Desktop, Flavor, ImageVersion
from compute.quota import flavor_share
from compute.services.desktops import desktop_create, desktop_retry
from tenants.errors import TenantsError
from tenants.models import ApprovalRequest, RequestKind
from tenants.quotas import ResourceAmounts
from tenants.services import request_hand_over, request_report

# The kinds whose requests become one desktop of the requester's.
DESKTOP_KINDS = (RequestKind.PERSONAL_DESKTOP, RequestKind.GPU_ENVIRONMENT)
# Where a request may still learn of its desktop's progress.
_REPORTING = (ApprovalRequest.State.APPROVED, ApprovalRequest.State.PARTIAL, ApprovalRequest.State.FAILED)
# A desktop in one of these states has been made (whatever its power): the request has it.
_MADE = (*Desktop.LIVE, Desktop.State.STARTING, Desktop.State.STOPPING, Desktop.State.REBOOTING, Desktop.State.BUSY)


def _invalid(message: str, field: str) -> InvalidInput:
    return InvalidInput(message, code=TenantsError.REQUEST_PAYLOAD_INVALID, detail={"field": field})


def request_objects(*, tenant, course, payload: dict) -> tuple[ImageVersion, Flavor]:
    """The image version and flavor a request's payload names, as this tenant (and course) may use them."""
    version = ImageVersion.objects.select_related("image").filter(pk=_int(payload.get("image_version"))).first()
    if (
        version is None
        or version.status != ImageVersion.Status.READY
        or not selectors.image_visible_to_tenant(version.image, tenant=tenant, course=course)
    ):
        raise _invalid(_("请选择一个可用的镜像。"), "image_version")
    flavor = Flavor.objects.select_related("tenant").filter(pk=_int(payload.get("flavor"))).first()
    if flavor is None or not selectors.flavor_usable_by_tenant(flavor, tenant=tenant):
        raise _invalid(_("请选择一个可用的规格。"), "flavor")
    if version.size_gib > flavor.disk_gib:
        raise _invalid(_("规格的系统盘小于镜像。"), "flavor")
    return version, flavor


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _plan(*, tenant, course, payload: dict, gpu: bool) -> tuple[ResourceAmounts, dict]:
    version, flavor = request_objects(tenant=tenant, course=course, payload=payload)
    if gpu and not flavor.gpus:
        raise _invalid(_("GPU 仿真环境需要带 GPU 的规格。"), "flavor")
    if not gpu and flavor.gpus:
        raise _invalid(_("带 GPU 的规格请申请 GPU 仿真环境。"), "flavor")
    plan = {
        "image_version": version.pk,
        "image_name": str(version),
        "flavor": flavor.pk,
        "flavor_name": flavor.name,
        "desktops": 1,
    }
    return flavor_share(flavor), plan


def plan_personal_desktop(*, tenant, course, requester, payload: dict) -> tuple[ResourceAmounts, dict]:
    """A personal desktop takes one desktop of its flavor."""
    return _plan(tenant=tenant, course=course, payload=payload, gpu=False)


def plan_gpu_desktop(*, tenant, course, requester, payload: dict) -> tuple[ResourceAmounts, dict]:
    """A GPU environment for the requester: one desktop of a GPU flavor."""
    return _plan(tenant=tenant, course=course, payload=payload, gpu=True)


def fulfil_desktop_request(request: ApprovalRequest) -> None:
    """Make the requester's desktop (called after the approval commits, and again on a retry:
    a desktop already made is retried when it failed, reported when it runs)."""
    existing = Desktop.objects.filter(pk=(request.fulfilment_detail or {}).get("desktop")).first()
    if existing is not None and existing.state == Desktop.State.ERROR:
        desktop_retry(actor=request.requester, desktop=existing)
        return
    if existing is not None and existing.state != Desktop.State.DELETED:
        desktop_request_progress(existing.pk)
        return
    version, flavor = request_objects(tenant=request.tenant, course=request.course, payload=request.payload or {})
    with transaction.atomic():
        # The request's hold is given back first: the desktop reserves its own share as it is made.
        request = request_hand_over(request=request)
        desktop = desktop_create(
            actor=request.requester,
            tenant=request.tenant,
            image_version=version,
            flavor=flavor,
            owner=request.requester,
            course=request.course,
            name=f"{version.image.name}-{request.requester.username}"[:100],
        )
        request_report(request=request, ready=0, failures=[], pending=1, detail={"desktop": desktop.pk})


def desktop_request_progress(desktop_id: int) -> None:
    """Tell the request a desktop was made for how it is: running, failed, or still being made."""
    desktop = Desktop.objects.filter(pk=desktop_id).first()
    if desktop is None or desktop.owner_id is None or desktop.state == Desktop.State.DELETED:
        return
    # The desktop was made for its requester: their requests are read by index, not every request's
    # JSON (this runs for every desktop made, the seats of a 60-seat pool included).
    request = ApprovalRequest.objects.filter(
        requester_id=desktop.owner_id,
        kind__in=DESKTOP_KINDS,
        state__in=_REPORTING,
        fulfilment_detail__desktop=desktop_id,
    ).first()
    if request is None:
        return
    failed = desktop.state == Desktop.State.ERROR
    request_report(
        request=request,
        ready=int(desktop.state in _MADE),
        failures=[{"name": desktop.name, "error": desktop.error_reason or desktop.last_error}] if failed else [],
        pending=int(not failed and desktop.state not in _MADE),
    )


def desktop_request_observer(*, desktop, at, reason: str) -> None:
    """compute's observer of its own desktops: once one is made or fails, its request hears of it."""
    if reason in ("provisioned", "failed") and desktop.owner_id is not None:
        desktop_id = desktop.pk
        transaction.on_commit(lambda: desktop_request_progress(desktop_id))
