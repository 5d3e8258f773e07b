"""compute's entries of the 等保 catalogue: 剩余信息保护 of the desktops' disks, and 热冗余 from HA's configuration.

What it reports is read from the code that does it, not written beside it: each hypervisor driver states
how a deleted disk's blocks are kept from the next volume (``residual_protection``: libvirt wipes a volume
before deleting it, vCenter's VMFS zeroes the blocks it hands out), and the services' signatures say that a
hand-over resets the system disk and takes the previous owner's data disks off. Registered by
ComputeConfig.ready().
"""

import importlib
import inspect
from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from audit.compliance import DB, RI, Check, Status, beat_has, register_checks, verdict
from compute.drivers import DRIVERS
from compute.models import ClusterHa, Endpoint, HaIncident, Host

METHODS = {
    "wipe": _("删除前擦除卷（libvirt wipe）"),
    "fresh_allocation": _("存储为新分配的块清零（VMFS）"),
}


def driver_protection(kind: str) -> str:
    """The ``residual_protection`` the driver of this endpoint kind declares ("" if none)."""
    module_name, _sep, class_name = DRIVERS[kind].partition(":")
    driver = getattr(importlib.import_module(module_name, "compute.drivers"), class_name)
    return getattr(driver, "residual_protection", "")


def hand_over_clears() -> bool:
    """Whether a desktop that changes hands is reset and loses the previous owner's data disks."""
    from compute.services.desktops import desktop_hand_over

    return "keep_data_disks" in inspect.signature(desktop_hand_over).parameters


def residual_data(level: int) -> tuple[Status, str]:
    kinds = sorted(set(Endpoint.objects.filter(is_active=True).values_list("kind", flat=True))) or sorted(DRIVERS)
    methods = {kind: driver_protection(kind) for kind in kinds}
    described = "；".join(f"{kind}：{METHODS.get(method, _('未声明清除方式'))}" for kind, method in methods.items())
    evidence = _(
        "桌面和数据盘删除时其存储块被清除（%(methods)s）；桌面转交给他人前重置系统盘，"
        "原使用者的数据盘卸载后保留给本人或擦除删除（按桌面池设置）。"
    ) % {"methods": described}
    met = all(method in METHODS for method in methods.values()) and hand_over_clears()
    return verdict(met, partly=any(method in METHODS for method in methods.values())), evidence


# A drill (or a real failure) older than this no longer shows that HA works.
DRILL_MAX_AGE_DAYS = 180


def _ha_findings() -> tuple[list[str], list[str], int]:
    """(what holds, what is missing, clusters with HA on) from the hosts, clusters and BMCs as configured."""
    hosts = list(Host.objects.filter(is_active=True, address__isnull=False).select_related("endpoint__cluster"))
    off = set(ClusterHa.objects.filter(enabled=False).values_list("cluster_id", flat=True))
    clusters: dict[int, list[Host]] = {}
    for host in hosts:
        clusters.setdefault(host.endpoint.cluster_id, []).append(host)
    protected = {cid: members for cid, members in clusters.items() if cid not in off and len(members) >= 2}
    good, missing = [], []
    if protected:
        good.append(_("%(n)d 个集群启用高可用（每个至少 2 台主机）") % {"n": len(protected)})
    if len(protected) < len(clusters):
        missing.append(_("%(n)d 个集群未启用高可用或只有 1 台主机") % {"n": len(clusters) - len(protected)})
    unfenced = [h.name for members in protected.values() for h in members if not h.bmc_configured]
    if protected and not unfenced:
        good.append(_("所有主机已配置 BMC（IPMI）隔离"))
    elif unfenced:
        missing.append(_("未配置 BMC 隔离的主机：%(hosts)s") % {"hosts": "、".join(sorted(unfenced)[:10])})
    if not beat_has("compute.tasks.ha.ha_tick"):
        missing.append(_("高可用检测任务未在定时任务中运行"))
    return good, missing, len(protected)


def _last_drill() -> tuple[bool, str]:
    incident = (
        HaIncident.objects.filter(finished_at__isnull=False)
        .exclude(outcome__in=(HaIncident.Outcome.RECOVERED, HaIncident.Outcome.CLEARED))
        .order_by("-finished_at")
        .first()
    )
    if incident is None:
        return False, str(_("尚无故障切换演练记录"))
    recent = incident.finished_at >= timezone.now() - timedelta(days=DRILL_MAX_AGE_DAYS)
    text = _("最近一次故障切换（%(when)s，主机 %(host)s）：%(outcome)s，重启 %(n)d 个桌面") % {
        "when": timezone.localtime(incident.finished_at).strftime("%Y-%m-%d %H:%M"),
        "host": incident.host.name,
        "outcome": incident.get_outcome_display(),
        "n": len(incident.restarted),
    }
    if incident.fenced_at:
        text += _("，%(s)d 秒内完成隔离") % {"s": (incident.fenced_at - incident.suspect_at).total_seconds()}
    ok = recent and incident.outcome == HaIncident.Outcome.RESTARTED
    return ok, text + ("" if recent else _("（已超过 %(d)d 天）") % {"d": DRILL_MAX_AGE_DAYS})


def ha_redundancy(level: int) -> tuple[Status, str]:
    """热冗余 from HA's real configuration: clusters with HA on, fencing configured, the last drill's result."""
    good, missing, protected = _ha_findings()
    drilled, drill = _last_drill()
    evidence = "；".join(str(x) for x in [*good, drill])
    if missing:
        evidence += _("。问题：%(problems)s") % {"problems": "；".join(str(p) for p in missing)}
    return verdict(not missing and drilled and protected > 0, partly=protected > 0), evidence


# fmt: off
CATALOGUE = [
    Check("db.redundancy", DB, {3: "8.1.4.9 c)"}, ha_redundancy,
          "应提供重要数据处理系统的热冗余，保证系统的高可用性",
          "为每个集群启用高可用并为所有主机配置 BMC（IPMI）隔离，定期进行故障切换演练（bench/ha_drill.py）。"),
    Check("ri.data", RI, {3: "8.1.4.10 b)"}, residual_data,
          "应保证存有敏感数据的存储空间被释放或重新分配前得到完全清除",
          "使用支持擦除（wipe）的存储池或在新分配时清零的存储；桌面转交与删除均经门户进行。"),
]
# fmt: on


def register() -> None:
    register_checks(CATALOGUE)
