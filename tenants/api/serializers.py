"""Serializers of the tenants API: one to read each object, one to validate each write."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from common import limits
from common.api.serializers import FastReadMixin, UpdateSerializer, WallClockTimeField
from tenants.models import (
    RESOURCES,
    ApprovalRequest,
    ApprovalStep,
    ClassTime,
    Course,
    Membership,
    Quota,
    RequestKind,
    RosterEntry,
    Tenant,
    amount_max,
)
from tenants.roles import TenantRole


def _amount_serializer(name: str, *, nullable: bool):
    """A {vcpu, ram_mib, disk_gib, gpus, desktops, ips} object (limits may be null: no limit)."""
    return type(
        name,
        (serializers.Serializer,),
        {
            field: serializers.IntegerField(
                min_value=0, max_value=amount_max(field), required=False, allow_null=nullable
            )
            for field in RESOURCES
        },
    )


AmountsSerializer = _amount_serializer("ResourceAmounts", nullable=False)
LimitsSerializer = _amount_serializer("ResourceLimits", nullable=True)


class TenantSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    name = serializers.CharField(read_only=True)

    class Meta:
        model = Tenant
        fields = ["slug", "name", "name_zh", "name_en", "kind", "parent", "path", "is_active", "created_at"]
        read_only_fields = ["path", "created_at"]


class TenantCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=50)
    name_zh = serializers.CharField(max_length=100)
    name_en = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    kind = serializers.ChoiceField(choices=Tenant.Kind.choices)
    parent = serializers.SlugField(required=False, allow_null=True, default=None)


class TenantUpdateSerializer(UpdateSerializer):
    name_zh = serializers.CharField(max_length=100, required=False)
    name_en = serializers.CharField(max_length=100, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


class MembershipSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    user_display_name = serializers.CharField(source="user.get_full_name", read_only=True)
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "user_display_name", "tenant", "role", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=150, help_text="username")
    tenant = serializers.SlugField()
    role = serializers.ChoiceField(choices=TenantRole.choices)


class ClassTimeSerializer(serializers.ModelSerializer):
    start_time = WallClockTimeField()
    end_time = WallClockTimeField()

    class Meta:
        model = ClassTime
        fields = ["weekday", "start_time", "end_time"]

    def validate(self, attrs):
        if attrs["end_time"] <= attrs["start_time"]:
            raise serializers.ValidationError({"end_time": [_("下课时间必须晚于上课时间。")]})
        return attrs


class CourseSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    teacher = serializers.SlugRelatedField(slug_field="username", read_only=True)
    teacher_name = serializers.CharField(source="teacher.get_full_name", read_only=True)
    class_times = ClassTimeSerializer(many=True, read_only=True)
    roster_size = serializers.IntegerField(read_only=True)

    class Meta:
        model = Course
        fields = [
            "id",
            "tenant",
            "code",
            "name",
            "teacher",
            "teacher_name",
            "term_start",
            "term_end",
            "class_times",
            "roster_size",
            "created_at",
        ]


class CourseCreateSerializer(serializers.Serializer):
    tenant = serializers.SlugField()
    code = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=150)
    teacher = serializers.CharField(max_length=150, required=False, help_text="username; default: the caller")
    term_start = serializers.DateField(validators=[limits.validate_year])
    term_end = serializers.DateField(validators=[limits.validate_year])
    class_times = ClassTimeSerializer(many=True, required=False, default=list)


class CourseUpdateSerializer(UpdateSerializer):
    name = serializers.CharField(max_length=150, required=False)
    teacher = serializers.CharField(max_length=150, required=False)
    term_start = serializers.DateField(required=False, validators=[limits.validate_year])
    term_end = serializers.DateField(required=False, validators=[limits.validate_year])


class RosterEntrySerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    display_name = serializers.CharField(source="user.display_name", read_only=True)

    class Meta:
        model = RosterEntry
        fields = ["student_number", "username", "display_name", "added_at"]


class RosterImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV or XLSX: student number, name")
    replace = serializers.BooleanField(required=False, default=False)
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Only say what the import would change (roster and pool)."
    )


RosterImportResult = inline_serializer(
    "RosterImportResult",
    {
        **{name: serializers.IntegerField() for name in ("created_accounts", "added", "unchanged", "removed")},
        # What the course's desktop pool did (seats added, handed over, retired...); absent without a pool.
        "pool": serializers.DictField(child=serializers.IntegerField(), required=False),
    },
)


class RosterPreviewStudentSerializer(serializers.Serializer):
    student_number = serializers.CharField()
    name = serializers.CharField()
    new_account = serializers.BooleanField(required=False)


RosterPreview = inline_serializer(
    "RosterPreview",
    {
        "added": RosterPreviewStudentSerializer(many=True),
        "removed": RosterPreviewStudentSerializer(many=True),
        "unchanged": serializers.IntegerField(),
        "created_accounts": serializers.IntegerField(),
        # The pool's seats before and after, added, handed over, retired, and a quota shortfall; null: no pool.
        "pool": serializers.DictField(allow_null=True),
    },
)


class QuotaSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    limits = serializers.SerializerMethodField()
    used = serializers.SerializerMethodField()
    reserved = serializers.SerializerMethodField()

    class Meta:
        model = Quota
        fields = ["id", "scope", "tenant", "course", "user", "limits", "used", "reserved", "updated_at"]

    @extend_schema_field(LimitsSerializer)
    def get_limits(self, quota) -> dict:
        return quota.limits()

    @extend_schema_field(AmountsSerializer)
    def get_used(self, quota) -> dict:
        return quota.amounts("used_")

    @extend_schema_field(AmountsSerializer)
    def get_reserved(self, quota) -> dict:
        return quota.amounts("reserved_")


class QuotaWriteSerializer(serializers.Serializer):
    tenant = serializers.SlugField()
    course = serializers.IntegerField(required=False, allow_null=True, default=None)
    user = serializers.CharField(max_length=150, required=False, allow_null=True, default=None)
    limits = LimitsSerializer()


class QuotaUpdateSerializer(UpdateSerializer):
    limits = LimitsSerializer()


class ApprovalStepSerializer(FastReadMixin, serializers.ModelSerializer):
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ApprovalStep
        fields = ["order", "approver_role", "state", "decided_by", "decided_at", "comment"]


class RequestSerializer(FastReadMixin, serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requester = serializers.SlugRelatedField(slug_field="username", read_only=True)
    requester_name = serializers.CharField(source="requester.get_full_name", read_only=True)
    course_code = serializers.CharField(source="course.code", read_only=True, default=None, allow_null=True)
    amounts = serializers.SerializerMethodField()
    steps = ApprovalStepSerializer(many=True, read_only=True)

    read_related = ("requester",)  # requester_name

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "tenant",
            "course",
            "course_code",
            "requester",
            "requester_name",
            "kind",
            "title",
            "payload",
            "amounts",
            "estimated_cost",
            "state",
            "reason",
            "rejection_reason",
            "auto_rule",
            "steps",
            "fulfilment_detail",
            "created_at",
            "decided_at",
        ]

    @extend_schema_field(AmountsSerializer)
    def get_amounts(self, request) -> dict:
        return request.amounts()


class RequestCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=RequestKind.choices)
    title = serializers.CharField(max_length=200)
    tenant = serializers.SlugField(required=False, help_text="default: the course's tenant, or the caller's only one")
    course = serializers.IntegerField(required=False, allow_null=True, default=None)
    payload = serializers.DictField(required=False, default=dict)
    amounts = AmountsSerializer()
    estimated_cost = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True, default=None
    )
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)


class ApproveSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)
