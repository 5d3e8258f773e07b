"""Fixtures of campus sign-in, as a pytest plugin (tests/conftest.py's `pytest_plugins`): one slapd and one
CAS server per test process, started on first use, and switches that point the portal at them.

    def test_x(ldap_on, cas_on): ...     # the portal's LDAP_* / CAS_* settings point at the servers

Under pytest-xdist each process starts its own pair on ports of its own.
"""

import pytest

from tests.sso.cas import CasServer
from tests.sso.slapd import Directory


@pytest.fixture(scope="session")
def ldap_directory():
    directory = Directory().start()
    yield directory
    directory.stop()


@pytest.fixture(scope="session")
def cas_server():
    server = CasServer().start()
    yield server
    server.stop()


@pytest.fixture
def ldap_on(settings, ldap_directory):
    """The portal's LDAP settings (CONTRACT.md names) pointed at the test directory, groups mapped to roles."""
    for name, value in ldap_directory.settings().items():
        setattr(settings, name, value)
    settings.LDAP_TIMEOUT = 2.0
    settings.DIRECTORY_GROUP_ROLES = {"cs-teachers": "cs:teacher"}
    return ldap_directory


@pytest.fixture
def cas_on(settings, cas_server):
    for name, value in cas_server.settings().items():
        setattr(settings, name, value)
    settings.CAS_TIMEOUT = 2.0
    return cas_server


@pytest.fixture
def portal_processes(transactional_db, ldap_directory):
    """Two portal web processes (uvicorn) on two loopback ports, one database, the test directory configured:
    as behind a load balancer. Yields their base URLs."""
    from tests.harness.asgi import portal_process

    settings = ldap_directory.settings()
    with portal_process(**settings) as first, portal_process(**settings) as second:
        yield [first, second]
