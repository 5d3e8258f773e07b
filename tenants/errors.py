"""The error codes of the tenants app: what API clients read in {"code", ...}, so values never change."""

from enum import StrEnum


class TenantsError(StrEnum):
    # Tenant tree
    TENANT_FORBIDDEN = "tenant_forbidden"
    INVALID_SLUG = "invalid_slug"
    INVALID_KIND = "invalid_kind"
    INVALID_NAME = "invalid_name"
    PARENT_INACTIVE = "parent_inactive"
    TENANT_SLUG_TAKEN = "tenant_slug_taken"
    TENANT_TOO_DEEP = "tenant_too_deep"

    # Roles (三员分立)
    UNKNOWN_ROLE = "unknown_role"
    ROLE_GRANT_FORBIDDEN = "role_grant_forbidden"
    ROLE_REVOKE_FORBIDDEN = "role_revoke_forbidden"
    PLATFORM_ROLES_SEPARATED = "platform_roles_separated"
    CANNOT_REVOKE_OWN_ADMIN = "cannot_revoke_own_admin"
    SELF_GRANT_FORBIDDEN = "self_grant_forbidden"
    AUDIT_AND_ADMIN_SEPARATED = "audit_and_admin_separated"

    # Courses, class times and rosters
    COURSE_FORBIDDEN = "course_forbidden"
    INVALID_COURSE_CODE = "invalid_course_code"
    COURSE_CODE_TAKEN = "course_code_taken"
    INVALID_TERM = "invalid_term"
    TEACHER_NOT_IN_TENANT = "teacher_not_in_tenant"
    COURSE_IN_USE = "course_in_use"
    INVALID_CLASS_TIME = "invalid_class_time"
    CLASS_TIMES_OVERLAP = "class_times_overlap"
    NOT_ON_ROSTER = "not_on_roster"
    ROSTER_UNREADABLE = "roster_unreadable"
    ROSTER_TOO_LARGE = "roster_too_large"
    ROSTER_FORMAT = "roster_format"
    ROSTER_INVALID = "roster_invalid"
    ROSTER_EMPTY = "roster_empty"

    # Quotas
    QUOTA_EXCEEDED = "quota_exceeded"
    QUOTA_FORBIDDEN = "quota_forbidden"
    QUOTA_EXCEEDS_PARENT = "quota_exceeds_parent"
    QUOTA_BELOW_CHILDREN = "quota_below_children"
    UNKNOWN_RESOURCE = "unknown_resource"
    INVALID_AMOUNT = "invalid_amount"
    COURSE_NOT_IN_TENANT = "course_not_in_tenant"

    # Requests and approval policies
    UNKNOWN_REQUEST_KIND = "unknown_request_kind"
    REQUEST_FORBIDDEN = "request_forbidden"
    COURSE_REQUIRED = "course_required"
    EMPTY_REQUEST = "empty_request"
    TITLE_REQUIRED = "title_required"
    NOT_YOUR_STEP = "not_your_step"
    REASON_REQUIRED = "reason_required"
    NOT_REQUESTER = "not_requester"
    POLICY_FORBIDDEN = "policy_forbidden"
    POLICY_NEEDS_STEP = "policy_needs_step"
    POLICY_NOT_STRICTER = "policy_not_stricter"
    REQUEST_PAYLOAD_INVALID = "request_payload_invalid"
