"""Login security: who needs a second factor, TOTP and recovery codes, password age, re-authentication.

Re-authentication, for other apps: decorate a view (Django or DRF method) with
`audit.security.reauth_required` before deleting desktops or issuing invoices. The person
must have confirmed their password (and one-time code, if they have a second factor)
within the policy's `reauth_minutes`: on a page through /audit/reauth/, over the API by
sending `X-Reauth-Password` (and `X-Reauth-OTP`) headers with the request.
"""

import functools
import secrets
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django_otp import devices_for_user
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit import hooks
from audit.actions import Action
from audit.errors import AuditError
from audit.models import PasswordHistory
from audit.policy import current_policy

# 等保: platform admins, finance and auditors use two factors.
SECOND_FACTOR_ROLES = frozenset({"system_admin", "security_admin", "audit_admin", "finance", "auditor"})
RECOVERY_CODE_COUNT = 10
HISTORY_KEPT = 24
SESSION_REAUTH = "_cc_reauth_at"
SESSION_PASSWORD_EXPIRED = "_cc_password_expired"
# The second factor a campus sign-in server asserted (CAS MFA): the session needs no TOTP then.
SESSION_EXTERNAL_MFA = "_cc_external_mfa"
# Why a sign-in failed, as the backend that refused it knows it: read by the failed-login event.
REQUEST_AUTH_FAILURE = "cc_auth_failure"


def auth_failure_note(request, *, source: str, reason: str, code: str = "", message: str = "") -> None:
    """A backend says why it refused (source: local/cas/ldap/oidc); the audit event and the page read it."""
    if request is not None:
        setattr(request, REQUEST_AUTH_FAILURE, {"source": source, "reason": reason, "code": code, "message": message})


def auth_failure_of(request) -> dict:
    return getattr(request, REQUEST_AUTH_FAILURE, None) or {}


def needs_second_factor(user) -> bool:
    return bool(hooks.roles_of(user) & SECOND_FACTOR_ROLES)


def totp_device(user, *, confirmed: bool | None = True) -> TOTPDevice | None:
    queryset = TOTPDevice.objects.filter(user=user)
    if confirmed is not None:
        queryset = queryset.filter(confirmed=confirmed)
    return queryset.order_by("-id").first()


def has_second_factor(user) -> bool:
    return any(True for _device in devices_for_user(user, confirmed=True))


def otp_verify(user, token: str):
    """The device that accepts `token` (TOTP, or a one-use recovery code), or None.

    TOTP refuses a code at or before the last one used (django-otp's `last_t`): no replay.
    """
    token = (token or "").strip().replace(" ", "")
    if not token:
        return None
    for device in devices_for_user(user, confirmed=True):
        if device.verify_token(token):
            return device
    return None


def totp_enrolment_start(*, user) -> TOTPDevice:
    """An unconfirmed TOTP device with a fresh secret (replacing an earlier unconfirmed one)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name="totp", confirmed=False)


def totp_enrolment_confirm(*, user, device: TOTPDevice, token: str) -> list[str] | None:
    """Confirm the device with a first code; returns fresh recovery codes, or None if the code is wrong."""
    from audit.services import event_record

    if not device.verify_token((token or "").strip()):
        return None
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        event_record(action=Action.SECOND_FACTOR_ENROLLED, actor=user, target=user, detail={"device": "totp"})
        codes = recovery_codes_generate(user=user)
    return codes


def totp_install(*, user, secret_hex: str) -> TOTPDevice:
    """Give `user` a confirmed TOTP device with a known secret (the demo's $DEMO_TOTP_SECRET)."""
    from audit.services import event_record

    with transaction.atomic():
        device = totp_device(user)
        if device is not None and device.key == secret_hex:
            return device
        TOTPDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(user=user, name="totp", key=secret_hex, confirmed=True)
        event_record(
            action=Action.SECOND_FACTOR_ENROLLED, actor=None, target=user, detail={"device": "totp", "by": "seed"}
        )
    return device


def recovery_codes_generate(*, user) -> list[str]:
    """Ten one-use recovery codes (django-otp static device); earlier ones stop working."""
    from audit.services import event_record

    with transaction.atomic():
        device, _created = StaticDevice.objects.get_or_create(user=user, name="recovery", defaults={"confirmed": True})
        device.token_set.all().delete()
        codes = [f"{secrets.randbelow(10**8):08d}" for _n in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
        event_record(action=Action.RECOVERY_CODES_GENERATED, actor=user, target=user)
    return codes


# --- passwords -------------------------------------------------------------------------------


def password_history_add(*, user) -> None:
    """Keep the new hash for the history rule and note when the password changed."""
    now = timezone.now()
    PasswordHistory.objects.create(user_id=user.pk, password=user.password)
    stale = PasswordHistory.objects.filter(user_id=user.pk).order_by("-created_at", "-id").values_list("id", flat=True)
    old_ids = list(stale[HISTORY_KEPT:])
    if old_ids:
        PasswordHistory.objects.filter(id__in=old_ids).delete()
    model = get_user_model()
    if any(field.name == "password_changed_at" for field in model._meta.get_fields()):
        model.objects.filter(pk=user.pk).update(password_changed_at=now)
        user.password_changed_at = now


def password_changed_at(user):
    last = PasswordHistory.objects.filter(user_id=user.pk).order_by("-created_at").values_list("created_at", flat=True)
    candidates = [value for value in (last.first(), getattr(user, "password_changed_at", None)) if value]
    return max(candidates) if candidates else getattr(user, "date_joined", None)


def password_expired(user) -> bool:
    changed = password_changed_at(user)
    if changed is None:
        return False
    return timezone.now() - changed > timedelta(days=current_policy().password_max_age_days)


def password_change(*, user, new_password: str) -> None:
    """Validate against the policy, set, and audit. Raises django ValidationError on a weak password."""
    from django.contrib.auth import password_validation

    from audit.services import event_record

    password_validation.validate_password(new_password, user)
    with transaction.atomic():
        user.set_password(new_password)
        user.save()  # calls the validators' password_changed(): history and password_changed_at
        event_record(action=Action.PASSWORD_CHANGED, actor=user, target=user)


# --- re-authentication -----------------------------------------------------------------------


def second_factor_owed(user) -> bool:
    """Roles that must use a second factor owe it at re-authentication too, enrolled or not."""
    from django.conf import settings

    return getattr(settings, "SECOND_FACTOR_REQUIRED", True) and needs_second_factor(user)


def reauth_confirm(*, request, password: str, otp: str = "") -> bool:
    """Check the password and the one-time code (when the user has a second factor, or their roles
    need one: not enrolled, they cannot re-authenticate until they enrol); stamp the session."""
    from audit.services import event_record

    user = request.user
    ok = user.check_password(password or "")
    if ok and (has_second_factor(user) or second_factor_owed(user)):
        ok = otp_verify(user, otp) is not None
    event_record(
        action=Action.REAUTHENTICATED,
        actor=user,
        target=user,
        result="success" if ok else "failure",
        reason="" if ok else "wrong password or one-time code",
    )
    if ok and hasattr(request, "session"):
        request.session[SESSION_REAUTH] = time.time()
    return ok


def reauth_fresh(request) -> bool:
    """Whether the person confirmed who they are recently enough for a dangerous action."""
    stamp = getattr(request, "session", {}).get(SESSION_REAUTH) if hasattr(request, "session") else None
    if stamp and time.time() - stamp <= current_policy().reauth_minutes * 60:
        return True
    password = request.META.get("HTTP_X_REAUTH_PASSWORD", "")
    if password:
        return reauth_confirm(request=request, password=password, otp=request.META.get("HTTP_X_REAUTH_OTP", ""))
    return False


def reauth_required(view):
    """Decorator for views (function views or DRF view methods) of dangerous actions.

    Pages get redirected to the re-authentication page and come back; API calls get a 403
    with code `reauthentication_required` until they send X-Reauth-Password (and X-Reauth-OTP).
    """

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        request = next(arg for arg in args if hasattr(arg, "META"))
        api = request.path.startswith("/api/") or "application/json" in request.META.get("HTTP_ACCEPT", "")
        if second_factor_owed(request.user) and not has_second_factor(request.user):
            # Invoices and credit notes need the second factor of a role that must have one: enrol first.
            message = _("此操作需要动态口令，请先绑定动态口令（双因素认证）。")
            if api:
                return JsonResponse(
                    {"code": AuditError.SECOND_FACTOR_NOT_ENROLLED, "message": message, "detail": {}}, status=403
                )
            return HttpResponseRedirect(f"{reverse('audit:otp_enrol')}?{urlencode({'next': request.get_full_path()})}")
        if reauth_fresh(request):
            return view(*args, **kwargs)
        message = _("此操作需要重新验证身份（密码和动态口令）。")
        if api:
            return JsonResponse(
                {"code": AuditError.REAUTHENTICATION_REQUIRED, "message": message, "detail": {}}, status=403
            )
        back = request.get_full_path() if request.method == "GET" else request.META.get("HTTP_REFERER", "/")
        return HttpResponseRedirect(f"{reverse('audit:reauth')}?{urlencode({'next': back})}")

    return wrapper


def second_factor_check(*, user, otp: str) -> None:
    """Non-interactive logins (API tokens): refuse unless the one-time code is right when the account needs one."""
    from django.conf import settings

    from audit.services import event_record
    from common.errors import Forbidden, InvalidInput

    if not getattr(settings, "SECOND_FACTOR_REQUIRED", True) or not needs_second_factor(user):
        return
    if not has_second_factor(user):
        raise Forbidden(_("该账号须先在网页上绑定动态口令（双因素认证）。"), code=AuditError.SECOND_FACTOR_NOT_ENROLLED)
    if otp_verify(user, otp) is None:
        event_record(
            action=Action.SECOND_FACTOR_FAILED, actor=user, target=user, result="failure", reason="API token: bad otp"
        )
        raise InvalidInput(
            _("请提供正确的动态口令（otp）。"),
            code=AuditError.OTP_REQUIRED if not (otp or "").strip() else AuditError.INVALID_OTP,
        )
