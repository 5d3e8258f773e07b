"""Talking to the CAS server: ticket validation with a timeout, and what its answer says.

django-cas-ng builds the client (CAS 2.0 or 3.0, from CAS_VERSION) and its views handle the
login redirect, gateway/renew and single logout; the answer is read here, so a refusal keeps
the server's own code (INVALID_TICKET: replayed, expired or forged; INVALID_SERVICE: a
ticket for another service) for the audit log.
"""

from dataclasses import dataclass, field

import requests
from django.conf import settings
from django_cas_ng.utils import get_cas_client
from lxml import etree

CAS_NS = "{http://www.yale.edu/tp/cas}"


class TimedSession(requests.Session):
    """A requests session whose calls give up after settings.CAS_TIMEOUT: a slow CAS fails fast."""

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", settings.CAS_TIMEOUT)
        return super().request(*args, **kwargs)


@dataclass(frozen=True)
class Validation:
    user: str = ""
    attributes: dict = field(default_factory=dict)
    failure_code: str = ""
    failure_text: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.user) and not self.failure_code


def _attributes(element) -> dict:
    values: dict = {}
    for child in element:
        name = child.tag.split("}")[-1]
        values.setdefault(name, []).append((child.text or "").strip())
    return values


def parse_validation(body: bytes) -> Validation:
    # No entities, no network: the answer is parsed as data only.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError:
        return Validation(failure_code="INVALID_RESPONSE", failure_text="not XML")
    if root is None:
        return Validation(failure_code="INVALID_RESPONSE", failure_text="empty")
    failure = root.find(f"{CAS_NS}authenticationFailure")
    if failure is not None:
        return Validation(failure_code=failure.get("code", "UNKNOWN"), failure_text=(failure.text or "").strip()[:200])
    success = root.find(f"{CAS_NS}authenticationSuccess")
    user = success.find(f"{CAS_NS}user") if success is not None else None
    if user is None or not (user.text or "").strip():
        return Validation(failure_code="INVALID_RESPONSE", failure_text="no cas:user")
    attributes = success.find(f"{CAS_NS}attributes")
    return Validation(user=user.text.strip(), attributes=_attributes(attributes) if attributes is not None else {})


def validate_ticket(*, ticket: str, service: str, request=None) -> Validation:
    """Ask the CAS server about `ticket` for `service` (raises requests.RequestException when unreachable)."""
    client = get_cas_client(service_url=service, request=request)
    client.session = TimedSession()
    return parse_validation(client.get_verification_response(ticket))
