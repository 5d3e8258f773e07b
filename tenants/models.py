"""Accounts, the tenant tree, memberships and platform roles."""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from common import limits
from common.units import memory_label
from tenants.roles import PlatformRole, TenantRole


class User(AbstractUser):
    """A person: local account or one created at first campus (CAS/LDAP) login."""

    display_name = models.CharField(_("姓名"), max_length=150, blank=True)
    student_number = models.CharField(_("学号/工号"), max_length=32, blank=True, db_index=True)
    password_changed_at = models.DateTimeField(_("密码修改时间"), null=True, blank=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        verbose_name = _("用户")
        verbose_name_plural = _("用户")

    def get_full_name(self):
        return self.full_name_of(self.display_name, self.first_name, self.last_name, self.username)

    @staticmethod
    def full_name_of(display_name: str, first_name: str, last_name: str, username: str) -> str:
        """``get_full_name`` from the four columns (a list reading them as columns, no User instance)."""
        return display_name or f"{first_name} {last_name}".strip() or username

    def __str__(self):
        return self.display_name and f"{self.display_name} ({self.username})" or self.username


class Tenant(models.Model):
    """A node of the tenant tree: university → college → department, any depth."""

    class Kind(models.TextChoices):
        UNIVERSITY = "university", _("学校")
        COLLEGE = "college", _("学院")
        DEPARTMENT = "department", _("系/部门")

    slug = models.SlugField(_("标识"), max_length=50, unique=True)
    name_zh = models.CharField(_("中文名称"), max_length=100)
    name_en = models.CharField(_("英文名称"), max_length=100, blank=True)
    kind = models.CharField(_("类型"), max_length=20, choices=Kind.choices, default=Kind.COLLEGE)
    parent = models.ForeignKey(
        "self", verbose_name=_("上级"), null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    # Materialised path ("/uni/cs/ai/") so a subtree is one indexed prefix query.
    path = models.CharField(max_length=255, db_index=True, editable=False)
    is_active = models.BooleanField(_("启用"), default=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("租户")
        verbose_name_plural = _("租户")
        ordering = ["path"]

    def __str__(self):
        return self.name

    @property
    def name(self) -> str:
        return self.name_of(self.name_zh, self.name_en)

    @staticmethod
    def name_of(name_zh: str, name_en: str) -> str:
        """A tenant's name in the current language from its two columns (a list reading them as columns)."""
        if name_en and (translation.get_language() or "").startswith("en"):
            return name_en
        return name_zh

    @property
    def depth(self) -> int:
        return self.path.count("/") - 2

    def ancestor_paths(self) -> list[str]:
        """The paths from the root down to this tenant: "/uni/cs/ai/" -> ["/uni/", "/uni/cs/", "/uni/cs/ai/"]."""
        parts = [p for p in self.path.split("/") if p]
        return ["/" + "/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


class Membership(models.Model):
    """A role of a person in a tenant. A person may hold several roles in several tenants."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("角色"), max_length=20, choices=TenantRole.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("成员")
        verbose_name_plural = _("成员")
        constraints = [models.UniqueConstraint(fields=["user", "tenant", "role"], name="membership_unique_role")]

    def __str__(self):
        return f"{self.user} @ {self.tenant.slug}: {self.get_role_display()}"


class PlatformAssignment(models.Model):
    """One of the three platform roles. The one-to-one key makes 三员分立 a database rule."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="platform_role")
    role = models.CharField(_("平台角色"), max_length=20, choices=PlatformRole.choices)
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("平台角色")
        verbose_name_plural = _("平台角色")

    def __str__(self):
        return f"{self.user}: {self.get_role_display()}"


class Course(models.Model):
    """A course of a tenant in one term: its teacher, its roster and its weekly class times."""

    tenant = models.ForeignKey(Tenant, verbose_name=_("租户"), on_delete=models.PROTECT, related_name="courses")
    code = models.CharField(_("课程代码"), max_length=32, help_text=_("例如 CS101"))
    name = models.CharField(_("课程名称"), max_length=150)
    teacher = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("教师"), on_delete=models.PROTECT, related_name="courses_taught"
    )
    term_start = models.DateField(_("学期开始"))
    term_end = models.DateField(_("学期结束"))
    students = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("学生名单"),
        through="RosterEntry",
        related_name="courses_enrolled",
        blank=True,
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("课程")
        verbose_name_plural = _("课程")
        ordering = ["tenant__path", "code"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "code"], name="course_unique_code_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(term_end__gte=models.F("term_start")), name="course_term_ordered"
            ),
        ]
        permissions = [("manage_course", _("管理课程（名单、桌面池）"))]

    def __str__(self):
        return f"{self.code} {self.name}"


class RosterEntry(models.Model):
    """A student on a course's roster, with the student number the roster was imported with."""

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="roster")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="roster_entries")
    student_number = models.CharField(_("学号"), max_length=32)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("名单条目")
        verbose_name_plural = _("名单条目")
        ordering = ["student_number"]
        constraints = [
            models.UniqueConstraint(fields=["course", "user"], name="roster_unique_user"),
            models.UniqueConstraint(fields=["course", "student_number"], name="roster_unique_student_number"),
        ]

    def __str__(self):
        return f"{self.course.code}: {self.student_number}"


class ClassTime(models.Model):
    """A weekly class slot of a course. Slots of one course never overlap (the service refuses it)."""

    class Weekday(models.IntegerChoices):
        MONDAY = 1, _("周一")
        TUESDAY = 2, _("周二")
        WEDNESDAY = 3, _("周三")
        THURSDAY = 4, _("周四")
        FRIDAY = 5, _("周五")
        SATURDAY = 6, _("周六")
        SUNDAY = 7, _("周日")

    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="class_times")
    weekday = models.PositiveSmallIntegerField(_("星期"), choices=Weekday.choices)
    start_time = models.TimeField(_("开始时间"))
    end_time = models.TimeField(_("结束时间"))

    class Meta:
        verbose_name = _("上课时间")
        verbose_name_plural = _("上课时间")
        ordering = ["weekday", "start_time"]
        constraints = [
            models.CheckConstraint(condition=models.Q(end_time__gt=models.F("start_time")), name="classtime_ordered"),
            models.CheckConstraint(condition=models.Q(weekday__gte=1, weekday__lte=7), name="classtime_weekday_iso"),
        ]

    def __str__(self):
        return f"{self.get_weekday_display()} {self.start_time:%H:%M}-{self.end_time:%H:%M}"

    def overlaps(self, other: "ClassTime") -> bool:
        return self.weekday == other.weekday and self.start_time < other.end_time and other.start_time < self.end_time


# --- Quotas -------------------------------------------------------------------------

# Memory is counted exactly, in MiB (a 256 MiB desktop takes 256 MiB); pages show it through
# common.units.memory_label and forms take it in GiB. "ips" counts every IPv4 address a tenant holds:
# each desktop NIC's address and each elastic IP, the addresses billing meters as IP-hours.
RESOURCES = ("vcpu", "ram_mib", "disk_gib", "gpus", "desktops", "ips")
RESOURCE_LABELS = {
    "vcpu": _("vCPU"),
    "ram_mib": _("内存"),
    "disk_gib": _("磁盘 (GiB)"),
    "gpus": _("GPU"),
    "desktops": _("桌面"),
    "ips": _("IP 地址"),
}


def amount_max(name: str) -> int:
    """The largest amount of one resource in a limit or a request."""
    return limits.RAM_MIB_AMOUNT_MAX if name == "ram_mib" else limits.AMOUNT_MAX


def amount_label(name: str, value) -> str:
    """An amount as pages and messages write it: memory through common.units.memory_label."""
    if value is None:
        return "∞"
    return memory_label(value) if name == "ram_mib" else str(value)


def _amount_fields(prefix: str, *, null: bool) -> dict:
    """One integer column per resource: limit_vcpu, used_vcpu, ..."""
    return {
        f"{prefix}{name}": models.PositiveIntegerField(
            f"{prefix}{name}", null=null, blank=null, default=None if null else 0
        )
        for name in RESOURCES
    }


class AmountsMixin:
    def amounts(self, prefix: str = "") -> dict[str, int]:
        return {name: getattr(self, f"{prefix}{name}") or 0 for name in RESOURCES}


class Quota(AmountsMixin, models.Model):
    """The limit, usage and reservations of one scope: a tenant, a course or a user in a tenant.

    A limit of NULL means "no limit at this level" (the levels above still bind). Usage and
    reservations are counters changed only under the row lock of `tenants.locks.quota_rows_lock`.
    """

    class Scope(models.TextChoices):
        TENANT = "tenant", _("租户")
        COURSE = "course", _("课程")
        USER = "user", _("用户")

    scope = models.CharField(_("范围"), max_length=10, choices=Scope.choices)
    tenant = models.ForeignKey(Tenant, verbose_name=_("租户"), on_delete=models.CASCADE, related_name="quotas")
    course = models.OneToOneField(
        Course, verbose_name=_("课程"), null=True, blank=True, on_delete=models.CASCADE, related_name="quota"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("用户"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quotas",
    )
    # "tenant:7", "course:12" or "user:7:42": one quota per scope. A unique column, because
    # MySQL/MariaDB have no partial unique indexes.
    key = models.CharField(max_length=64, unique=True, editable=False)
    # The highest usage threshold (0, 80, 100 percent) already notified; reset when usage falls back.
    notified_level = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    locals().update(_amount_fields("limit_", null=True))
    locals().update(_amount_fields("used_", null=False))
    locals().update(_amount_fields("reserved_", null=False))

    class Meta:
        verbose_name = _("配额")
        verbose_name_plural = _("配额")
        ordering = ["tenant__path", "scope", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(scope="tenant", course__isnull=True, user__isnull=True)
                    | models.Q(scope="course", course__isnull=False, user__isnull=True)
                    | models.Q(scope="user", course__isnull=True, user__isnull=False)
                ),
                name="quota_scope_matches_keys",
            ),
        ]

    def __str__(self):
        if self.scope == self.Scope.COURSE:
            return f"{self.tenant.slug}/{self.course.code}"
        if self.scope == self.Scope.USER:
            return f"{self.tenant.slug}/{self.user.username}"
        return self.tenant.slug

    def limits(self) -> dict[str, int | None]:
        return {name: getattr(self, f"limit_{name}") for name in RESOURCES}


class Reservation(AmountsMixin, models.Model):
    """Resources held against quotas: reserved at approval, committed when provisioned, released at the end."""

    class State(models.TextChoices):
        RESERVED = "reserved", _("已预留")
        COMMITTED = "committed", _("已使用")
        RELEASED = "released", _("已释放")

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="reservations")
    course = models.ForeignKey(Course, null=True, blank=True, on_delete=models.SET_NULL, related_name="reservations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="reservations"
    )
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.RESERVED)
    reason = models.CharField(_("原因"), max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    locals().update(_amount_fields("", null=False))

    class Meta:
        verbose_name = _("配额预留")
        verbose_name_plural = _("配额预留")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "state"])]

    def __str__(self):
        return f"#{self.pk} {self.tenant.slug} {self.get_state_display()}"


# --- Approval workflows ---------------------------------------------------------------


class RequestKind(models.TextChoices):
    COURSE_DESKTOPS = "course_desktops", _("课程桌面")
    PERSONAL_DESKTOP = "personal_desktop", _("个人桌面")
    GPU_ENVIRONMENT = "gpu_environment", _("GPU 仿真环境")
    QUOTA_INCREASE = "quota_increase", _("配额调整")


class ApproverRole(models.TextChoices):
    TENANT_ADMIN = "tenant_admin", _("院系管理员")
    SYSTEM_ADMIN = "system_admin", _("平台系统管理员")
    # An admin of a tenant above the request's (the system admin for a top-level tenant): the step a
    # quota increase always ends with, so that no tenant grows its own quota.
    PARENT_ADMIN = "parent_admin", _("上级管理员")


class ApprovalPolicy(models.Model):
    """How a tenant's requests are approved: ordered steps and auto-approval rules. Children inherit it."""

    tenant = models.OneToOneField(Tenant, verbose_name=_("租户"), on_delete=models.CASCADE, related_name="policy")
    name = models.CharField(_("名称"), max_length=100)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("审批策略")
        verbose_name_plural = _("审批策略")

    def __str__(self):
        return self.name


class PolicyStep(models.Model):
    """One approval step. With thresholds set, the step applies only when a request exceeds one of them."""

    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField(_("顺序"))
    approver_role = models.CharField(_("审批人"), max_length=20, choices=ApproverRole.choices)
    above_desktops = models.PositiveIntegerField(_("桌面数超过"), null=True, blank=True)
    above_vcpu = models.PositiveIntegerField(_("vCPU 超过"), null=True, blank=True)
    above_gpus = models.PositiveIntegerField(_("GPU 超过"), null=True, blank=True)
    above_cost = models.DecimalField(_("月费用超过（元）"), max_digits=12, decimal_places=2, null=True, blank=True)

    class Meta:
        verbose_name = _("审批步骤")
        verbose_name_plural = _("审批步骤")
        ordering = ["policy", "order"]
        constraints = [models.UniqueConstraint(fields=["policy", "order"], name="policystep_unique_order")]

    def __str__(self):
        return f"{self.order}. {self.get_approver_role_display()}"


class AutoApprovalRule(models.Model):
    """Approve without a person when a request stays within every maximum (as ManageIQ does)."""

    policy = models.ForeignKey(ApprovalPolicy, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(_("规则名称"), max_length=100)
    kind = models.CharField(_("申请类型"), max_length=20, choices=RequestKind.choices, blank=True)
    max_desktops = models.PositiveIntegerField(_("最多桌面数"), default=0)
    max_vcpu = models.PositiveIntegerField(_("最多 vCPU"), default=0)
    max_ram_mib = models.PositiveIntegerField(_("最多内存 (MiB)"), default=0)
    max_gpus = models.PositiveIntegerField(_("最多 GPU"), default=0)
    max_disk_gib = models.PositiveIntegerField(_("最多磁盘 (GiB)"), default=0)
    max_ips = models.PositiveIntegerField(_("最多 IP 地址"), default=0)
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        verbose_name = _("自动审批规则")
        verbose_name_plural = _("自动审批规则")
        ordering = ["policy", "id"]

    def __str__(self):
        return self.name


class ApprovalRequest(AmountsMixin, models.Model):
    """A request for resources. Its state changes only through the named transitions of the services."""

    class State(models.TextChoices):
        PENDING = "pending", _("待审批")
        APPROVED = "approved", _("已批准")
        REJECTED = "rejected", _("已驳回")
        CANCELLED = "cancelled", _("已撤回")
        FULFILLED = "fulfilled", _("已交付")
        # Some of what was asked for runs, some failed (the reasons are in fulfilment_detail): retry.
        PARTIAL = "partial", _("部分交付")
        FAILED = "failed", _("交付失败")

    tenant = models.ForeignKey(Tenant, verbose_name=_("租户"), on_delete=models.PROTECT, related_name="requests")
    course = models.ForeignKey(
        Course, verbose_name=_("课程"), null=True, blank=True, on_delete=models.PROTECT, related_name="requests"
    )
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("申请人"), on_delete=models.PROTECT, related_name="requests"
    )
    kind = models.CharField(_("类型"), max_length=20, choices=RequestKind.choices)
    title = models.CharField(_("标题"), max_length=200)
    # What is asked for, in the words of the app that fulfils it: image version, flavor, seats, class times.
    payload = models.JSONField(_("申请内容"), default=dict, blank=True)
    estimated_cost = models.DecimalField(_("预计月费用（元）"), max_digits=12, decimal_places=2, null=True, blank=True)
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    reason = models.TextField(_("说明"), blank=True)
    rejection_reason = models.TextField(_("驳回原因"), blank=True)
    auto_rule = models.CharField(_("自动审批规则"), max_length=100, blank=True)
    reservation = models.OneToOneField(
        Reservation, null=True, blank=True, on_delete=models.SET_NULL, related_name="request"
    )
    fulfilment_detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(_("提交时间"), auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(_("决定时间"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    locals().update(_amount_fields("", null=False))

    class Meta:
        verbose_name = _("申请")
        verbose_name_plural = _("申请")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "state"])]

    def __str__(self):
        return f"#{self.pk} {self.title}"

    @property
    def current_step(self):
        steps = [s for s in self.steps.all() if s.state == ApprovalStep.State.PENDING]
        return steps[0] if steps else None


class ApprovalStep(models.Model):
    """One step a request goes through, and who decided it, when and why."""

    class State(models.TextChoices):
        PENDING = "pending", _("待审批")
        APPROVED = "approved", _("已同意")
        REJECTED = "rejected", _("已驳回")
        SKIPPED = "skipped", _("未执行")

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField(_("顺序"))
    approver_role = models.CharField(_("审批人"), max_length=20, choices=ApproverRole.choices)
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(_("意见"), blank=True)

    class Meta:
        verbose_name = _("审批记录")
        verbose_name_plural = _("审批记录")
        ordering = ["request", "order"]
        constraints = [models.UniqueConstraint(fields=["request", "order"], name="approvalstep_unique_order")]

    def __str__(self):
        return f"#{self.request_id}.{self.order} {self.get_state_display()}"
