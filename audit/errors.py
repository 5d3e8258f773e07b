"""The error codes of the audit app: what API clients read in {"code", ...}, so values never change."""

from enum import StrEnum


class AuditError(StrEnum):
    # Sign-in, sessions and the second factor (等保 身份鉴别)
    ACCOUNT_LOCKED = "account_locked"
    SESSION_EXPIRED = "session_expired"
    SECOND_FACTOR_REQUIRED = "second_factor_required"
    SECOND_FACTOR_NOT_ENROLLED = "second_factor_not_enrolled"
    OTP_REQUIRED = "otp_required"
    INVALID_OTP = "invalid_otp"
    REAUTHENTICATION_REQUIRED = "reauthentication_required"

    # Passwords (codes of Django's ValidationError, shown on forms)
    PASSWORD_EXPIRED = "password_expired"
    PASSWORD_TOO_SHORT = "password_too_short"
    PASSWORD_TOO_SIMPLE = "password_too_simple"
    PASSWORD_CONTAINS_USERNAME = "password_contains_username"
    PASSWORD_REUSED = "password_reused"

    # The security policy
    SECURITY_ADMIN_ONLY = "security_admin_only"
    UNKNOWN_POLICY_FIELD = "unknown_policy_field"
    BELOW_PLATFORM_FLOOR = "below_platform_floor"

    # 等保 self-assessment
    NOT_A_MANUAL_CHECK = "not_a_manual_check"
    UNKNOWN_STATUS = "unknown_status"
    EVIDENCE_REQUIRED = "evidence_required"
    REPORT_FORBIDDEN = "report_forbidden"
    INVALID_LEVEL = "invalid_level"
