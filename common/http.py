"""Small request helpers: whether a caller wants JSON, and where a page may send them next."""

from django.utils.http import url_has_allowed_host_and_scheme


def wants_json(request) -> bool:
    """API paths and clients that ask for JSON get JSON refusals; browsers get pages."""
    return request.path.startswith("/api/") or "application/json" in request.META.get("HTTP_ACCEPT", "")


def safe_next(request, default: str) -> str:
    """The request's ``next`` (form field, then query string) when it stays on this site; ``default`` otherwise.

    A ``next`` that points elsewhere (another host, another scheme, ``//host``) would make the
    portal an open redirect for phishing links, so it is ignored.
    """
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default
