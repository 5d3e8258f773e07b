"""HTML pages of tenants: the tree, members, courses and rosters, quotas, approval queue and history.

Same services as the API; querysets come from tenants.selectors, so another tenant's
object is a 404 here too. A service's refusal is shown as a message, never a 500.
"""

from tenants.views.courses import course_detail, course_list, course_reassign
from tenants.views.members import member_revoke, members, tenant_toggle, tenant_tree
from tenants.views.quotas import quota_edit, quota_list
from tenants.views.requests import policy, request_action, request_detail, request_list, request_new

__all__ = [
    "tenant_tree",
    "tenant_toggle",
    "members",
    "member_revoke",
    "course_list",
    "course_reassign",
    "course_detail",
    "quota_list",
    "quota_edit",
    "request_list",
    "request_detail",
    "request_action",
    "policy",
    "request_new",
]
