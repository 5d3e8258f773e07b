"""Login, logout, failed-login and lockout events, from Django's and django-axes' auth signals.

These are the only events not written by a service: Django's login machinery is the writer.
"""

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.actions import Action
from audit.models import AuditEvent
from audit.services import event_record

SESSION_LOGOUT_REASON = "_cc_logout_reason"


def login_source(user) -> str:
    """local, cas, ldap or oidc: from the backend that authenticated the user (settings.AUTH_SOURCE_BY_BACKEND)."""
    backend = getattr(user, "backend", "") or ""
    return getattr(settings, "AUTH_SOURCE_BY_BACKEND", {}).get(backend, "local")


@receiver(user_logged_in, dispatch_uid="audit_login")
def _logged_in(sender, request, user, **kwargs):
    from audit.security import SESSION_EXTERNAL_MFA, SESSION_PASSWORD_EXPIRED, password_expired

    source = login_source(user)
    session = getattr(request, "session", None) if request is not None else None
    detail = {"source": source}
    if session is not None and session.get(SESSION_EXTERNAL_MFA):
        detail["mfa"] = session[SESSION_EXTERNAL_MFA]
    event_record(action=Action.LOGIN_SUCCEEDED, actor=user, target=user, detail=detail)
    # Only a local password ages: a campus sign-in is not asked to change a password it never used.
    if session is not None and source == "local" and password_expired(user):
        session[SESSION_PASSWORD_EXPIRED] = True


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logged_out(sender, request, user, **kwargs):
    if user is None:
        return
    reason = getattr(request, SESSION_LOGOUT_REASON, "") if request is not None else ""
    event_record(action=Action.SESSION_EXPIRED if reason else Action.LOGOUT, actor=user, target=user, reason=reason)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    from audit.security import auth_failure_of

    noted = auth_failure_of(request)
    username = str((credentials or {}).get("username", "") or noted.get("username", ""))[:150]
    locked = bool(getattr(request, "axes_locked_out", False))
    second_factor = (credentials or {}).get("second_factor")
    event_record(
        action=Action.SECOND_FACTOR_FAILED if second_factor else Action.LOGIN_FAILED,
        actor_username=username,
        object_type="auth.user",
        object_name=username,
        result=AuditEvent.Result.FAILURE,
        reason="account locked" if locked else (second_factor or noted.get("reason") or "invalid credentials"),
        detail={"source": noted.get("source", "local")},
    )


def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    event_record(
        action=Action.LOCKOUT,
        actor_username=str(username or "")[:150],
        object_type="auth.user",
        object_name=str(username or "")[:150],
        result=AuditEvent.Result.FAILURE,
        reason="too many failed logins",
        detail={"ip_address": ip_address or ""},
    )


def connect_axes() -> None:
    from axes.signals import user_locked_out

    user_locked_out.connect(_locked_out, dispatch_uid="audit_lockout")
