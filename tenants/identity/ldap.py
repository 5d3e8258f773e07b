"""django-auth-ldap's settings, built from the portal's own names (CONTRACT.md: LDAP_*), at each use.

Reading them at each authentication (not at import) lets an operator's environment, and the
tests, switch the directory on and off without a second set of AUTH_LDAP_* names.
"""

import ldap
from django.conf import settings
from django_auth_ldap.backend import LDAPSettings
from django_auth_ldap.config import GroupOfNamesType, LDAPSearch

# The ppolicy lock and the attributes the portal reads; "*" keeps the campus's own attributes.
USER_ATTRIBUTES = ["*", "pwdAccountLockedTime"]


def ldap_settings() -> LDAPSettings:
    timeout = settings.LDAP_TIMEOUT
    options = {
        ldap.OPT_NETWORK_TIMEOUT: timeout,  # connect
        ldap.OPT_TIMEOUT: timeout,  # every synchronous operation: a hung directory fails fast
        ldap.OPT_REFERRALS: 0,  # Active Directory's referrals lead to servers we cannot bind to
    }
    if settings.LDAP_CA_FILE:
        options[ldap.OPT_X_TLS_CACERTFILE] = settings.LDAP_CA_FILE
        options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        options[ldap.OPT_X_TLS_NEWCTX] = 0  # apply the TLS options above to this connection
    values = {
        "SERVER_URI": settings.LDAP_SERVER_URI,
        "BIND_DN": settings.LDAP_BIND_DN,
        "BIND_PASSWORD": settings.LDAP_BIND_PASSWORD,
        "USER_SEARCH": LDAPSearch(
            settings.LDAP_USER_BASE, ldap.SCOPE_SUBTREE, settings.LDAP_USER_FILTER, attrlist=USER_ATTRIBUTES
        ),
        "USER_ATTRLIST": USER_ATTRIBUTES,
        "START_TLS": settings.LDAP_START_TLS,
        "CONNECTION_OPTIONS": options,
        "ALWAYS_UPDATE_USER": False,
        "MIRROR_GROUPS": False,
        "FIND_GROUP_PERMS": False,
        "CACHE_TIMEOUT": 0,
    }
    if settings.LDAP_GROUP_BASE:
        values["GROUP_SEARCH"] = LDAPSearch(settings.LDAP_GROUP_BASE, ldap.SCOPE_SUBTREE, "(objectClass=groupOfNames)")
        values["GROUP_TYPE"] = GroupOfNamesType()
    # A prefix nobody sets: every value comes from the defaults above.
    return LDAPSettings(prefix="CC_LDAP_FROM_PORTAL_SETTINGS_", defaults=values)
