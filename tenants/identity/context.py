"""Template context of the login page: which campus sign-in buttons to show."""

from django.conf import settings


def sign_in(request) -> dict:
    cas = bool(settings.CAS_SERVER_URL)
    # With CAS as the only way in, break-glass platform accounts still reach the form at ?local=1.
    return {"cas_enabled": cas, "cas_only": cas and settings.CAS_ONLY and not request.GET.get("local")}
