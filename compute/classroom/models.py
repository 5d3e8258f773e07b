"""Course desktop pools and their seats, class sessions and exceptions, console tickets, image authoring.

A pool gives every student on a course's roster one desktop (a compute ``Desktop``, a
linked clone of the pool's golden image version). The schedule powers the pool on before
each class and off after it; ``ClassSession`` rows remember how far each class got, so the
beat task can run every minute and do each step once.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from common.db import LockingManager


class DesktopPool(models.Model):
    class Persistence(models.TextChoices):
        PERSISTENT = "persistent", _("整学期保留")
        RESET = "reset_after_class", _("每次课后重置为黄金镜像")

    class State(models.TextChoices):
        ACTIVE = "active", _("使用中")
        RETIRED = "retired", _("已停用")

    class LeaverDisks(models.TextChoices):
        """What becomes of the data disks of a student who leaves the seat (roster change, hand-over)."""

        KEEP = "keep", _("卸载并保留给原学生")
        DELETE = "delete", _("擦除并删除")

    course = models.ForeignKey(
        "tenants.Course", verbose_name=_("课程"), on_delete=models.PROTECT, related_name="desktop_pools"
    )
    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("租户"), on_delete=models.PROTECT, related_name="+")
    name = models.CharField(_("名称"), max_length=100)
    # The golden image seats are (re)made from; a newer version reaches a seat at its next reset.
    image_version = models.ForeignKey(
        "compute.ImageVersion", verbose_name=_("镜像版本"), on_delete=models.PROTECT, related_name="pools"
    )
    flavor = models.ForeignKey("compute.Flavor", verbose_name=_("规格"), on_delete=models.PROTECT, related_name="+")
    endpoint = models.ForeignKey(
        "compute.Endpoint", verbose_name=_("端点"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    persistence = models.CharField(
        _("保留策略"), max_length=20, choices=Persistence.choices, default=Persistence.PERSISTENT
    )
    lead_minutes = models.PositiveSmallIntegerField(
        _("课前开机（分钟）"), default=15, validators=[MaxValueValidator(240)]
    )
    shutdown_after_minutes = models.PositiveSmallIntegerField(
        _("课后关机（分钟）"), default=10, validators=[MaxValueValidator(240)]
    )
    # A student still connected puts the shutdown off, but never past this many minutes after the
    # class ends: the desktop is then powered off anyway (the student is warned meanwhile).
    shutdown_deadline_minutes = models.PositiveSmallIntegerField(
        _("课后最迟关机（分钟）"), default=30, validators=[MaxValueValidator(480)]
    )
    leaver_disks = models.CharField(
        _("离开学生的数据盘"), max_length=10, choices=LeaverDisks.choices, default=LeaverDisks.KEEP
    )
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.ACTIVE)
    # How many seats the pool keeps (the roster's size when 0 or smaller): the rest are spare seats,
    # provisioned like the others, without a student, for latecomers and broken desktops.
    seat_target = models.PositiveSmallIntegerField(_("座位数"), default=0)
    request = models.ForeignKey(
        "tenants.ApprovalRequest",
        verbose_name=_("申请"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("课程桌面池")
        verbose_name_plural = _("课程桌面池")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.name


class Seat(models.Model):
    """One student's place in a pool, and the desktop that goes with it. A spare seat has no student
    (yet): its desktop belongs to the course's teacher until the seat is given to a student."""

    class State(models.TextChoices):
        ACTIVE = "active", _("使用中")
        RETIRING = "retiring", _("回收中")
        RETIRED = "retired", _("已回收")

    pool = models.ForeignKey(DesktopPool, verbose_name=_("桌面池"), on_delete=models.CASCADE, related_name="seats")
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("学生"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="seats",
    )
    desktop = models.OneToOneField(
        "compute.Desktop",
        verbose_name=_("桌面"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="seat",
    )
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.ACTIVE, db_index=True)
    # Why the seat's desktop could not be requested (placement, quota, budget): shown with a retry button.
    error = models.CharField(_("错误"), max_length=500, blank=True)
    # The class session whose after-class reset this seat already had (each class resets once).
    reset_for = models.ForeignKey(
        "ClassSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    # The seat's desktop is being moved to the pool's flavor and started again: stopped (a change
    # applied at once) or about to be powered on for a class, it is resized, then started.
    flavor_restart = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    retired_at = models.DateTimeField(_("回收时间"), null=True, blank=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("座位")
        verbose_name_plural = _("座位")
        ordering = ["pool", "student__username"]
        # A pool's seats in a state: the pool list counts each pool's active seats three ways (a lookup,
        # not the intersection of the pool's seats with every active seat of the campus).
        indexes = [models.Index(fields=["pool", "state"], name="seat_pool_state")]

    def __str__(self):
        return f"{self.pool_id}:{self.student_id or 'spare'}"

    @property
    def is_spare(self) -> bool:
        return self.student_id is None

    @property
    def holder_name(self) -> str:
        """Who the seat is for, as pages and messages name it."""
        if self.student is None:
            return str(_("空闲座位"))
        return self.student.get_full_name() or self.student.username


class ScheduleException(models.Model):
    """No class on a date: a holiday (every class of that day) or one skipped class."""

    pool = models.ForeignKey(DesktopPool, on_delete=models.CASCADE, related_name="exceptions")
    date = models.DateField(_("日期"))
    # Empty: the whole day (a holiday).
    class_time = models.ForeignKey(
        "tenants.ClassTime", verbose_name=_("课次"), null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(_("原因"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("停课日期")
        verbose_name_plural = _("停课日期")
        ordering = ["date", "id"]

    def __str__(self):
        return f"{self.date} {self.class_time or ''}".strip()


class ClassSession(models.Model):
    """One class of a pool on one date: what the schedule has done for it so far."""

    class State(models.TextChoices):
        POWERED_ON = "powered_on", _("已开机")
        SHUTTING_DOWN = "shutting_down", _("关机中")
        DONE = "done", _("已结束")

    pool = models.ForeignKey(DesktopPool, on_delete=models.CASCADE, related_name="sessions")
    class_time = models.ForeignKey("tenants.ClassTime", on_delete=models.CASCADE, related_name="+")
    date = models.DateField(_("日期"))
    starts_at = models.DateTimeField(_("上课"))
    ends_at = models.DateTimeField(_("下课"))
    state = models.CharField(_("状态"), max_length=16, choices=State.choices, default=State.POWERED_ON)
    powered_on_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Shutdowns put off because a student was still connected.
    warnings = models.PositiveIntegerField(default=0)
    last_warning = models.CharField(max_length=500, blank=True)
    # When the deadline passed and desktops still in use were powered off anyway.
    forced_at = models.DateTimeField(null=True, blank=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("课次记录")
        verbose_name_plural = _("课次记录")
        ordering = ["-starts_at"]
        constraints = [
            models.UniqueConstraint(fields=["pool", "class_time", "date"], name="classsession_unique_per_date")
        ]

    def __str__(self):
        return f"{self.pool_id} {self.date} {self.class_time_id}"


class ConsoleTicket(models.Model):
    """A single-use, short-lived right to open one desktop's console; only its hash is stored."""

    token_hash = models.CharField(max_length=64, unique=True)
    desktop = models.ForeignKey(
        "compute.Desktop", verbose_name=_("桌面"), on_delete=models.CASCADE, related_name="console_tickets"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("用户"), on_delete=models.CASCADE, related_name="+"
    )
    host = models.CharField(max_length=100)
    port = models.PositiveIntegerField()
    # The one-time VNC password the ticket set on the domain (encrypted at rest): the proxy's key to QEMU.
    vnc_password_encrypted = models.TextField(blank=True, editable=False)
    issued_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    client = models.CharField(max_length=64, blank=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("控制台票据")
        verbose_name_plural = _("控制台票据")
        indexes = [models.Index(fields=["desktop", "closed_at"])]

    def __str__(self):
        return f"console {self.desktop_id} by {self.user_id}"


class AuthoringSession(models.Model):
    """A teacher's desktop for preparing a lab image, published as a new golden image version."""

    class State(models.TextChoices):
        ACTIVE = "active", _("编辑中")
        PUBLISHING = "publishing", _("发布中")
        PUBLISHED = "published", _("已发布")
        FAILED = "failed", _("发布失败")

    course = models.ForeignKey("tenants.Course", on_delete=models.CASCADE, related_name="authoring_sessions")
    teacher = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    source_version = models.ForeignKey("compute.ImageVersion", on_delete=models.PROTECT, related_name="+")
    desktop = models.ForeignKey("compute.Desktop", on_delete=models.PROTECT, related_name="+")
    published_version = models.ForeignKey(
        "compute.ImageVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(_("状态"), max_length=12, choices=State.choices, default=State.ACTIVE)
    last_error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("镜像制作")
        verbose_name_plural = _("镜像制作")
        ordering = ["-created_at"]

    def __str__(self):
        return f"authoring {self.pk}"
