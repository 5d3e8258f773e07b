"""The error codes API clients read: each is its member's name in lower case, defined once."""

import pytest

from audit.errors import AuditError
from billing.errors import BillingError
from common.errors import ErrorCode, InvalidInput
from network.errors import NetworkError
from portal.errors import PortalError
from tenants.errors import TenantsError

APP_ENUMS = [AuditError, TenantsError, NetworkError, BillingError, PortalError]


@pytest.mark.parametrize("enum", [ErrorCode, *APP_ENUMS], ids=lambda enum: enum.__name__)
def test_a_code_is_its_member_name_so_a_value_cannot_change_unnoticed(enum):
    assert [member.value for member in enum] == [member.name.lower() for member in enum]


@pytest.mark.parametrize("enum", APP_ENUMS, ids=lambda enum: enum.__name__)
def test_an_app_does_not_redefine_a_shared_code(enum):
    assert not {member.value for member in enum} & {member.value for member in ErrorCode}


def test_a_service_error_carries_the_plain_string_of_its_code():
    error = InvalidInput("x", code=TenantsError.ROSTER_EMPTY)
    assert error.code == "roster_empty" and type(error.code) is str
