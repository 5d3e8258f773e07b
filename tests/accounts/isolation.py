"""Objects of tenant `cs` for tests/api/test_isolation.py: accounts, platform roles, API tokens; 404 to `me`."""


def _account(scenario):
    return {"id": scenario.student.pk}


def _token(scenario):
    from tenants.identity.tokens import token_issue

    token, _key = token_issue(user=scenario.student, name="laptop")
    return {"id": token.pk}


def _platform_role(scenario):
    return {"id": scenario.sysadmin.platform_role.pk}


MAKERS = {
    "/api/v1/accounts/{id}/": _account,
    "/api/v1/accounts/{id}/disable/": _account,
    "/api/v1/accounts/{id}/enable/": _account,
    "/api/v1/accounts/{id}/reset-password/": _account,
    "/api/v1/accounts/{id}/local-password/": _account,
    "/api/v1/platform-roles/{id}/": _platform_role,
    "/api/v1/auth/tokens/{id}/": _token,
}
