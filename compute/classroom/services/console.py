"""The browser console: single-use tickets for a running desktop's console, their redemption by the
WebSocket proxy (compute.classroom.consumers), its heartbeats and closing, and which desktops have a
console open (the schedule does not power off a desktop a student is on)."""

from __future__ import annotations

import datetime
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import Action
from audit.services import event_record
from common.errors import Conflict, NotFound
from compute.classroom import locks
from compute.classroom.errors import ErrorCode
from compute.classroom.models import ConsoleTicket
from compute.console_rfb import vnc_password
from compute.drivers.base import DriverError
from compute.drivers.base import ErrorCode as DriverErrorCode
from compute.models import Desktop, Endpoint, secret_encrypt
from tenants import permissions as tenant_permissions
from tenants.models import User
from tenants.roles import TenantRole

TICKET_SECONDS = 60
# A console is "connected" while its proxy reports traffic at least this often.
CONSOLE_SEEN_SECONDS = 90


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def can_open_console(user: User | None, desktop: Desktop) -> bool:
    """A student opens only their own desktop's console while they are a member of its tenant; a
    course's teacher (while they teach it) or the tenant admin any desktop of the course."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if desktop.owner_id == user.pk:
        return tenant_permissions.holds_role_over(user, desktop.tenant, *TenantRole.values)
    return desktop.course_id is not None and tenant_permissions.can_manage_course(user, desktop.course)


@dataclass(frozen=True)
class ConsoleGrant:
    """What the console API hands out: a ticket, until when, and where to speak which protocol.

    ``rfb``: ``websocket_url`` is the portal's own proxy (a path), which relays VNC for one use.
    ``webmks``: a vCenter ticket; ``websocket_url`` is the host's WebMKS endpoint (absolute
    ``wss://``), for a VMware WebMKS client; the portal's noVNC page cannot speak it."""

    ticket: str
    expires_at: datetime.datetime
    websocket_url: str
    protocol: str = "rfb"


def _console_refused(desktop: Desktop, exc: DriverError) -> Conflict:
    """The 409 for a console the hypervisor would not open, saying why in the user's words."""
    if exc.code in (DriverErrorCode.UNSUPPORTED, DriverErrorCode.CONSOLE_UNSUPPORTED):
        if desktop.endpoint.kind == Endpoint.Kind.VCENTER:
            message = _(
                "该桌面所在的 vCenter 不提供网页控制台（WebMKS 票据），请使用 vSphere 客户端或 VMware Remote "
                "Console 连接此桌面。"
            )
        else:
            message = _("该虚拟化平台不提供网页控制台。")
        return Conflict(
            message,
            code=ErrorCode.CONSOLE_UNSUPPORTED,
            detail={"endpoint_kind": desktop.endpoint.kind, "reason": exc.message},
        )
    if exc.code == DriverErrorCode.INVALID_STATE:
        return Conflict(
            _("桌面已关机。请先开机，再打开控制台。"),
            code=ErrorCode.DESKTOP_STOPPED,
            detail={"state": desktop.state, "start_url": f"/api/v1/desktops/{desktop.pk}/start/"},
        )
    return Conflict(
        _("暂时无法连接虚拟化平台，请稍后再试。"), code=ErrorCode.CONSOLE_UNAVAILABLE, detail={"reason": exc.message}
    )


def _vnc_host(desktop: Desktop, reported: str) -> str:
    """Where the proxy connects: the desktop's host's management address from the database; a host
    without one (the portal's own machine, ``qemu:///system``) listens where libvirt reports."""
    host = desktop.host
    if host is not None and host.address:
        return str(host.address)
    return reported or "127.0.0.1"


def _one_time_password(desktop: Desktop, expires_at: datetime.datetime) -> str:
    """A fresh VNC password on the domain, valid until the ticket expires (libvirt); "" where the driver
    has none to set (the proxy then finds VNC without authentication, as before)."""
    from compute.hypervisor import driver_for

    password = vnc_password()
    try:
        driver_for(desktop.endpoint).console_password_set(desktop.vm_name, password, expires_at)
    except DriverError as exc:
        if exc.code in (DriverErrorCode.UNSUPPORTED, DriverErrorCode.CONSOLE_UNSUPPORTED):
            return ""
        raise _console_refused(desktop, exc) from exc
    return password


def console_ticket_issue(*, actor: User, desktop: Desktop, client: str = "") -> ConsoleGrant:
    """A random single-use ticket, valid TICKET_SECONDS, for the console of a running desktop
    (only its hash is stored); on vCenter, the endpoint's own WebMKS ticket where it issues one."""
    if not can_open_console(actor, desktop):
        raise NotFound(_("桌面不存在。"))
    if desktop.state in (Desktop.State.STOPPED, Desktop.State.STOPPING) or desktop.power_state == Desktop.Power.STOPPED:
        raise Conflict(
            _("桌面已关机。请先开机，再打开控制台。"),
            code=ErrorCode.DESKTOP_STOPPED,
            detail={"state": desktop.state, "start_url": f"/api/v1/desktops/{desktop.pk}/start/"},
        )
    if desktop.state != Desktop.State.RUNNING:
        raise Conflict(
            _("桌面当前为“%(state)s”，请稍后再打开控制台。") % {"state": desktop.get_state_display()},
            code=ErrorCode.DESKTOP_NOT_RUNNING,
            detail={"state": desktop.state},
        )
    from compute.hypervisor import driver_for

    try:
        # On vCenter this asks for a WebMKS ticket (AcquireTicket); where the endpoint has none
        # (vcsim, old hosts) the driver says so and the user is told what to use instead.
        address = driver_for(desktop.endpoint).console_address(desktop.vm_name)
    except DriverError as exc:
        raise _console_refused(desktop, exc) from exc
    expires_at = timezone.now() + datetime.timedelta(seconds=TICKET_SECONDS)
    if address.ticket and address.url:
        # The browser talks to the host directly: the portal never sees the session, so the
        # opening is audited here, when the ticket is handed out.
        event_record(
            action=Action.CONSOLE_OPENED,
            actor=actor,
            target=desktop,
            tenant=desktop.tenant,
            detail={"protocol": "webmks", "host": address.host, "client": client[:64]},
        )
        return ConsoleGrant(ticket=address.ticket, expires_at=expires_at, websocket_url=address.url, protocol="webmks")
    password = _one_time_password(desktop, expires_at)
    token = secrets.token_urlsafe(32)
    ConsoleTicket.objects.create(
        token_hash=_hash(token),
        desktop=desktop,
        user=actor,
        host=_vnc_host(desktop, address.host),
        port=address.port,
        vnc_password_encrypted=secret_encrypt(password),
        expires_at=expires_at,
        client=client[:64],
    )
    return ConsoleGrant(ticket=token, expires_at=expires_at, websocket_url=console_ws_path(token))


class TicketRefused(Exception):
    """The WebSocket proxy refuses a ticket: unknown, used, expired, or the desktop moved on."""


def console_ticket_redeem(*, token: str, client: str = "") -> ConsoleTicket:
    """Use a ticket once: mark it used and audit the opening; raises TicketRefused."""
    if not token or len(token) > 100:
        raise TicketRefused("malformed")
    with transaction.atomic():
        ticket = locks.ticket_lock(_hash(token))
        if ticket is None:
            raise TicketRefused("unknown")
        if ticket.used_at is not None:
            raise TicketRefused("used")
        now = timezone.now()
        if ticket.expires_at <= now:
            raise TicketRefused("expired")
        desktop = ticket.desktop
        # Permission is checked again: the desktop may have been handed to another student.
        if desktop.state != Desktop.State.RUNNING or not can_open_console(ticket.user, desktop):
            raise TicketRefused("desktop")
        ticket.used_at = ticket.seen_at = now
        if client:
            ticket.client = client[:64]
        ticket.save(update_fields=["used_at", "seen_at", "client"])
        event_record(
            action=Action.CONSOLE_OPENED,
            actor=ticket.user,
            target=desktop,
            tenant=desktop.tenant,
            detail={"ticket": ticket.pk, "client": ticket.client},
        )
    return ticket


def console_seen(*, ticket_id: int) -> bool:
    """Mark an open console as in use; False when its person may no longer see the desktop (a role
    revoked, the account disabled, the seat handed over): the proxy then closes it."""
    ticket = (
        ConsoleTicket.objects.select_related("desktop__tenant", "desktop__course__tenant").filter(pk=ticket_id).first()
    )
    if ticket is None or ticket.closed_at is not None:
        return False
    user = User.objects.filter(pk=ticket.user_id).first()  # fresh: no role cached from the opening
    if user is None or not can_open_console(user, ticket.desktop):
        return False
    ConsoleTicket.objects.filter(pk=ticket_id, closed_at__isnull=True).update(seen_at=timezone.now())
    return True


def console_close(*, ticket_id: int, reason: str = "") -> None:
    with transaction.atomic():
        ticket = ConsoleTicket.objects.select_related("desktop__tenant", "user").filter(pk=ticket_id).first()
        if ticket is None or ticket.closed_at is not None:
            return
        ticket.closed_at = timezone.now()
        ticket.save(update_fields=["closed_at"])
        seconds = int((ticket.closed_at - (ticket.used_at or ticket.closed_at)).total_seconds())
        event_record(
            action=Action.CONSOLE_CLOSED,
            actor=ticket.user,
            target=ticket.desktop,
            tenant=ticket.desktop.tenant,
            detail={"ticket": ticket.pk, "seconds": seconds, "reason": reason[:100]},
        )


def console_ws_path(token: str) -> str:
    return f"{getattr(settings, 'CONSOLE_WS_PREFIX', '/ws/console/')}{token}/"


def connected_desktop_ids(desktop_ids: Iterable[int], now: datetime.datetime | None = None) -> set[int]:
    """Desktops with a console open right now (the proxy reported traffic recently)."""
    now = now or timezone.now()
    return set(
        ConsoleTicket.objects.filter(
            desktop_id__in=list(desktop_ids),
            used_at__isnull=False,
            closed_at__isnull=True,
            seen_at__gte=now - datetime.timedelta(seconds=CONSOLE_SEEN_SECONDS),
        ).values_list("desktop_id", flat=True)
    )
