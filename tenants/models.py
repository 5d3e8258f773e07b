"""Accounts, the tenant tree, memberships and platform roles."""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import translation
from django.utils.translation import gettext_lazy as _

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
        return self.display_name or super().get_full_name() or self.username

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
        if self.name_en and (translation.get_language() or "").startswith("en"):
            return self.name_en
        return self.name_zh

    @property
    def depth(self) -> int:
        return self.path.count("/") - 2


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
        return f"{self.user} @ {self.tenant.slug}: {self.role}"


class PlatformAssignment(models.Model):
    """One of the three platform roles. The one-to-one key makes 三员分立 a database rule."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="platform_role")
    role = models.CharField(_("平台角色"), max_length=20, choices=PlatformRole.choices)
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("平台角色")
        verbose_name_plural = _("平台角色")

    def __str__(self):
        return f"{self.user}: {self.role}"


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
