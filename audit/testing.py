"""Helpers for tests of any app: log in an account that needs a second factor, already verified."""

from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice


def force_login_verified(client, user) -> TOTPDevice:
    """Like `client.force_login(user)`, plus a verified TOTP device in the session.

    Platform admins, finance and auditors are otherwise sent to enrol or verify a second
    factor (audit.middleware.SecondFactorMiddleware) before any page.
    """
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="totp", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device
