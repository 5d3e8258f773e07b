"""Django admin for tenants: read-only views for recovery and inspection.

Every change to tenants, roles, courses, quotas and requests goes through tenants.services,
which checks permissions and writes the audit log; the admin would bypass both, so here
it only shows.
"""

from django.contrib import admin

from common.admin import ReadOnlyAdmin, ReadOnlyInline
from tenants.models import (
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalStep,
    AutoApprovalRule,
    ClassTime,
    Course,
    Membership,
    PlatformAssignment,
    PolicyStep,
    Quota,
    Reservation,
    RosterEntry,
    Tenant,
    User,
)


@admin.register(User)
class UserAdmin(ReadOnlyAdmin):
    list_display = ["username", "display_name", "student_number", "email", "is_active", "last_login"]
    search_fields = ["username", "display_name", "student_number", "email"]
    list_filter = ["is_active"]
    exclude = ["password"]


@admin.register(Tenant)
class TenantAdmin(ReadOnlyAdmin):
    list_display = ["path", "name_zh", "name_en", "kind", "is_active"]
    search_fields = ["slug", "name_zh", "name_en"]
    list_filter = ["kind", "is_active"]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "tenant__slug"]
    list_select_related = ["user", "tenant"]


@admin.register(PlatformAssignment)
class PlatformAssignmentAdmin(ReadOnlyAdmin):
    list_display = ["user", "role", "granted_at"]


class RosterInline(ReadOnlyInline):
    model = RosterEntry
    fields = ["student_number", "user", "added_at"]
    readonly_fields = fields


class ClassTimeInline(ReadOnlyInline):
    model = ClassTime


@admin.register(Course)
class CourseAdmin(ReadOnlyAdmin):
    list_display = ["code", "name", "tenant", "teacher", "term_start", "term_end"]
    search_fields = ["code", "name"]
    list_select_related = ["tenant", "teacher"]
    inlines = [ClassTimeInline, RosterInline]


@admin.register(Quota)
class QuotaAdmin(ReadOnlyAdmin):
    list_display = ["key", "scope", "tenant", "course", "user", "notified_level", "updated_at"]
    list_filter = ["scope"]
    list_select_related = ["tenant", "course", "user"]


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ["pk", "tenant", "course", "user", "state", "desktops", "vcpu", "created_at"]
    list_filter = ["state"]
    list_select_related = ["tenant", "course", "user"]


class PolicyStepInline(ReadOnlyInline):
    model = PolicyStep


class RuleInline(ReadOnlyInline):
    model = AutoApprovalRule


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(ReadOnlyAdmin):
    list_display = ["name", "tenant", "updated_at"]
    inlines = [PolicyStepInline, RuleInline]


class StepInline(ReadOnlyInline):
    model = ApprovalStep


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    list_display = ["pk", "title", "kind", "tenant", "requester", "state", "created_at"]
    list_filter = ["state", "kind"]
    search_fields = ["title", "requester__username"]
    list_select_related = ["tenant", "requester"]
    inlines = [StepInline]
