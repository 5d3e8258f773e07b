"""Receivers of campus sign-in: the directory's errors, and what a successful sign-in leaves on the account.

Connected from IdentityConfig.ready(). They record state, never business rules: the login
event itself is audit's (audit.signals), with the source these backends set.
"""

from django.contrib.auth.signals import user_logged_in

from audit.security import SESSION_EXTERNAL_MFA, SESSION_PASSWORD_EXPIRED, needs_second_factor
from audit.signals import login_source
from tenants.identity.models import AccountState, Source
from tenants.identity.selectors import must_change_password


def _ldap_error(sender, context, user, request=None, exception=None, **kwargs):
    """django-auth-ldap swallows a down directory into "no such user": keep why, for the page and the audit."""
    from django.conf import settings

    from tenants.identity.backends import note_unavailable

    reason = f"directory unavailable during {context}: {type(exception).__name__}"
    note_unavailable(request, source=Source.LDAP, server=settings.LDAP_SERVER_URI, reason=reason)


def _signed_in(sender, request, user, **kwargs):
    source = login_source(user)
    session = getattr(request, "session", None)
    external_mfa = session.get(SESSION_EXTERNAL_MFA, "") if session is not None else ""
    mfa = external_mfa or ("totp" if needs_second_factor(user) else "")
    AccountState.objects.update_or_create(user=user, defaults={"last_login_source": source, "last_login_mfa": mfa})
    if session is not None and source == Source.LOCAL and must_change_password(user):
        session[SESSION_PASSWORD_EXPIRED] = True  # audit's middleware then allows only the change-password page


def _single_logout(sender, user=None, session=None, ticket=None, **kwargs):
    """The CAS server ended the campus session: the portal's session goes too (django-cas-ng deletes it)."""
    if sender != "slo" or user is None or not getattr(user, "pk", None):
        return  # a logout on the portal itself is audited by audit.signals
    from audit.actions import Action
    from audit.services import event_record

    event_record(action=Action.LOGOUT, actor=user, target=user, reason="CAS single logout", detail={"source": "cas"})


def connect() -> None:
    from django_auth_ldap.backend import ldap_error
    from django_cas_ng.signals import cas_user_logout

    ldap_error.connect(_ldap_error, dispatch_uid="identity_ldap_error")
    cas_user_logout.connect(_single_logout, dispatch_uid="identity_cas_single_logout")
    user_logged_in.connect(_signed_in, dispatch_uid="identity_signed_in")
