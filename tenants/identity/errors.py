"""Error codes of campus sign-in and account management; tests assert against these members."""

from enum import StrEnum


class ErrorCode(StrEnum):
    DIRECTORY_UNAVAILABLE = "directory_unavailable"
    IDENTITY_ATTRIBUTE_MISSING = "identity_attribute_missing"
    IDENTITY_ATTRIBUTE_INVALID = "identity_attribute_invalid"
    IDENTITY_CONFLICT = "identity_conflict"
    USERNAME_TAKEN = "username_taken"
    ACCOUNT_FORBIDDEN = "account_forbidden"
    ACCOUNT_NOT_IN_TENANT = "account_not_in_tenant"
    CANNOT_DISABLE_SELF = "cannot_disable_self"
    LOCAL_PASSWORD_DISABLED = "local_password_disabled"
    PASSWORD_CHANGE_REQUIRED = "password_change_required"
    INVALID_USERNAME = "invalid_username"
    INVALID_ROLE = "invalid_role"
    STAFF_IMPORT_INVALID = "staff_import_invalid"
    WEAK_PASSWORD = "weak_password"
    DIRECTORY_SETTINGS_FORBIDDEN = "directory_settings_forbidden"
