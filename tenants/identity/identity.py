"""A campus identity as a directory or CAS server asserts it, read from raw attributes, strictly.

Every backend turns what its server said into one `CampusIdentity`; matching and provisioning
(tenants.identity.provisioning) never see a protocol. An attribute that is missing or not what
the campus promised refuses the sign-in, and the log names the attribute.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from common.errors import Forbidden
from tenants.identity.errors import ErrorCode
from tenants.roster import NUMBER_RE

log = logging.getLogger("tenants.identity")

STAFF_AFFILIATIONS = {"staff", "faculty", "employee", "teacher"}


class IdentityRefused(Forbidden):
    """The campus said who this is, but the portal cannot let them in (attribute, conflict, lock)."""


@dataclass(frozen=True)
class CampusIdentity:
    source: str  # tenants.identity.models.Source
    subject: str  # the user id at the campus server (CAS user, LDAP uid)
    number: str  # student/staff number: the roster's key
    name: str = ""
    email: str = ""
    department: str = ""
    staff: bool = False
    groups: frozenset[str] = field(default_factory=frozenset)
    mfa: str = ""  # the second factor the campus server asserts, if any


def _values(attributes: Mapping, name: str) -> list:
    value = attributes.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _text(attributes: Mapping, name: str, *, subject: str, required: bool = False) -> str:
    """The first value of `name` as text; bytes must be UTF-8 (python-ldap hands over what it could not decode)."""
    values = [v for v in _values(attributes, name) if v not in (None, b"", "")]
    if not values:
        if required:
            log.warning("campus identity %s refused: attribute %s is missing", subject, name)
            raise IdentityRefused(
                _("统一身份认证没有提供 %(attr)s 属性，无法确认您的学号/工号。请联系信息中心。") % {"attr": name},
                code=ErrorCode.IDENTITY_ATTRIBUTE_MISSING,
                detail={"attribute": name},
            )
        return ""
    value = values[0]
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            log.warning("campus identity %s refused: attribute %s is not UTF-8 (%r)", subject, name, value[:40])
            raise IdentityRefused(
                _("统一身份认证提供的 %(attr)s 属性编码异常，无法建立账号。请联系信息中心。") % {"attr": name},
                code=ErrorCode.IDENTITY_ATTRIBUTE_INVALID,
                detail={"attribute": name},
            ) from exc
    return str(value).strip()


def identity_from_attributes(
    *,
    source: str,
    subject: str,
    attributes: Mapping,
    number_attribute: str,
    names: Mapping[str, str],
    staff: bool = False,
    groups=(),
    mfa: str = "",
) -> CampusIdentity:
    """Read the number (required, as the roster writes it) and the descriptive attributes."""
    subject = (subject or "").strip()
    if number_attribute == "cas:user":  # campuses whose CAS user id is the student/staff number
        number = subject
    else:
        number = _text(attributes, number_attribute, subject=subject, required=True)
    if not NUMBER_RE.match(number):
        log.warning(
            "campus identity %s refused: attribute %s has unexpected characters (%r)", subject, number_attribute, number
        )
        raise IdentityRefused(
            _("统一身份认证提供的学号/工号（%(attr)s）格式异常，无法建立账号。请联系信息中心。")
            % {"attr": number_attribute},
            code=ErrorCode.IDENTITY_ATTRIBUTE_INVALID,
            detail={"attribute": number_attribute},
        )
    affiliations = {str(v).lower() for v in _values(attributes, "eduPersonAffiliation")}
    return CampusIdentity(
        source=source,
        subject=subject,
        number=number,
        name=_text(attributes, names.get("name", "cn"), subject=subject)[:150],
        email=_text(attributes, names.get("email", "mail"), subject=subject)[:254],
        department=_text(attributes, names.get("department", "departmentNumber"), subject=subject).lower()[:64],
        staff=staff or bool(affiliations & STAFF_AFFILIATIONS),
        groups=frozenset(str(g) for g in groups),
        mfa=mfa,
    )
