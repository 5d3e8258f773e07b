"""What a desktop keeps besides its system disk: snapshots, and data disks (volumes) that may outlive it."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from common.db import LockingManager
from common.errors import Conflict, InvalidInput
from compute.errors import ComputeError
from compute.models.desktops import Desktop
from compute.models.inventory import Endpoint


class SnapshotManager(LockingManager):
    def gone_with_disk(self, *, desktop_id: int) -> int:
        """The desktop's VM or system disk is gone (deleted, reset): its snapshots went with it."""
        return (
            self.filter(desktop_id=desktop_id)
            .exclude(state=Snapshot.State.DELETED)
            .update(state=Snapshot.State.DELETED)
        )


class Snapshot(models.Model):
    class State(models.TextChoices):
        CREATING = "creating", _("创建中")
        READY = "ready", _("可用")
        REVERTING = "reverting", _("恢复中")
        DELETING = "deleting", _("删除中")
        DELETED = "deleted", _("已删除")
        ERROR = "error", _("错误")

    # The state a snapshot is in while the task of each operation runs.
    IN_PROGRESS = {"create": State.CREATING, "revert": State.REVERTING, "delete": State.DELETING}

    desktop = models.ForeignKey(Desktop, verbose_name=_("桌面"), on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(_("名称"), max_length=64)
    description = models.CharField(_("说明"), max_length=255, blank=True)
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.CREATING)
    last_error = models.TextField(_("最近错误"), blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = SnapshotManager()

    class Meta:
        verbose_name = _("快照")
        verbose_name_plural = _("快照")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["desktop", "name"], name="snapshot_unique_name")]

    def __str__(self):
        return self.name

    def begin(self, op: str) -> None:
        """Revert to a ready snapshot, or delete it: it is in the operation's state until the task reports."""
        if self.state != self.State.READY:
            raise Conflict(_("快照当前不可用。"), code=ComputeError.SNAPSHOT_NOT_READY, detail={"state": self.state})
        self.state = self.IN_PROGRESS[op]

    def finished(self, *, op: str, error: str = "") -> None:
        """The task reported. A failed create leaves a snapshot that cannot be used; a failed revert or
        delete leaves it as it was, ready."""
        if error:
            self.last_error = error
            self.state = self.State.ERROR if op == "create" else self.State.READY
        elif op == "delete":
            self.state = self.State.DELETED
        else:
            self.state = self.State.READY
            self.last_error = ""


class Volume(models.Model):
    """A data disk of a tenant: attached to one desktop at a time, or kept detached to attach elsewhere.

    It holds disk quota from its creation until it is deleted; a desktop's deletion deletes
    the disks attached to it then.
    """

    class State(models.TextChoices):
        ATTACHING = "attaching", _("挂载中")
        ATTACHED = "attached", _("已挂载")
        DETACHING = "detaching", _("卸载中")
        DETACHED = "detached", _("未挂载")
        DELETING = "deleting", _("删除中")
        DELETED = "deleted", _("已删除")
        ERROR = "error", _("错误")

    desktop = models.ForeignKey(
        Desktop, verbose_name=_("桌面"), null=True, blank=True, on_delete=models.CASCADE, related_name="volumes"
    )
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("租户"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("使用者"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Where it lives: a volume moves only between desktops of this endpoint.
    endpoint = models.ForeignKey(
        Endpoint, verbose_name=_("端点"), null=True, blank=True, on_delete=models.PROTECT, related_name="volumes"
    )
    name = models.CharField(_("名称"), max_length=64)
    size_gib = models.PositiveIntegerField(_("容量 (GiB)"), validators=[MinValueValidator(1)])
    pool = models.CharField(_("存储池"), max_length=100, blank=True)
    volume_name = models.CharField(_("卷名"), max_length=255, blank=True)
    target = models.CharField(_("设备"), max_length=32, blank=True)
    path = models.CharField(_("路径"), max_length=500, blank=True)
    state = models.CharField(_("状态"), max_length=10, choices=State.choices, default=State.ATTACHING)
    last_error = models.TextField(_("最近错误"), blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    quota_reservation = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = LockingManager()

    class Meta:
        verbose_name = _("数据盘")
        verbose_name_plural = _("数据盘")
        ordering = ["created_at", "id"]
        # The volume list's order (newest first): a page is read off the index, not sorted.
        indexes = [models.Index(fields=["created_at", "id"], name="volume_list_order")]

    def __str__(self):
        return self.name

    # The state a volume is in while the task of each operation runs.
    IN_PROGRESS = {"attach": State.ATTACHING, "detach": State.DETACHING, "delete": State.DELETING}

    def begin_attach(self, desktop: Desktop) -> None:
        """A detached disk goes onto ``desktop``, which must be on the disk's endpoint (where its file is)."""
        if self.state != self.State.DETACHED or self.desktop_id is not None:
            raise Conflict(_("数据盘正在使用中。"), code=ComputeError.VOLUME_IN_USE, detail={"state": self.state})
        if self.endpoint_id != desktop.endpoint_id:
            raise InvalidInput(
                _("数据盘在另一个虚拟化端点上，只能挂载到同一端点的桌面。"), code=ComputeError.VOLUME_OTHER_ENDPOINT
            )
        self.desktop = desktop
        self.state = self.State.ATTACHING
        self.last_error = ""

    def begin_detach(self) -> None:
        if self.state not in (self.State.ATTACHED, self.State.ERROR):
            raise Conflict(
                _("数据盘当前不能卸载。"), code=ComputeError.VOLUME_NOT_ATTACHED, detail={"state": self.state}
            )
        self.state = self.State.DETACHING

    def begin_deletion(self) -> None:
        if self.state not in (self.State.DETACHED, self.State.ERROR) or self.desktop_id is not None:
            raise Conflict(
                _("数据盘仍挂载在桌面上，请先卸载。"), code=ComputeError.VOLUME_IN_USE, detail={"state": self.state}
            )
        self.state = self.State.DELETING

    def attached(self, *, target: str, path: str, volume_name: str = "") -> None:
        self.state, self.target, self.path = self.State.ATTACHED, target, path
        self.volume_name = volume_name or self.volume_name
        self.last_error = ""

    def detached(self) -> None:
        """Off its desktop and kept, to be attached elsewhere or deleted."""
        self.state, self.desktop, self.target = self.State.DETACHED, None, ""

    def deleted(self) -> None:
        self.state, self.desktop, self.target = self.State.DELETED, None, ""

    def gone_with_desktop(self) -> None:
        """Its desktop was deleted while the disk was on it: the disk was deleted with the VM."""
        self.state = self.State.DELETED

    def fail(self, *, op: str, reason: str) -> None:
        """The task failed for good; a disk that could not be deleted is still there (and detached)."""
        self.last_error = reason
        self.state = self.State.DETACHED if op == "delete" else self.State.ERROR
