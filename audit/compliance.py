"""等保 2.0 self-assessment (自查/差距分析): the registry of checks and the compliance rate.

One check per 测评指标 of the controls of 安全计算环境 and 安全管理中心 (GB/T 22239-2019;
level 2 clauses are in chapter 7, level 3 in chapter 8). A check with an `auto` function is
evaluated against the running system; the others are manual: the security admin records a
finding with evidence (ManualAssessment), and an unrecorded manual item counts as 不符合.

Each app keeps a catalogue of its checks (audit/checks.py, tenants/compliance.py: one table of
entries) and registers it at start-up with `register_checks`, so this module imports nothing of
theirs. The helpers at the end answer what several checks ask.

The compliance rate is the portal's own metric, not an official score:
(符合 + 0.5 × 部分符合) / (checks that apply).
"""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import models
from django.utils.translation import gettext_lazy as _


class Status(models.TextChoices):
    """What every check returns, automatic or manual."""

    CONFORM = "conform", _("符合")
    PARTIAL = "partial", _("部分符合")
    NONCONFORM = "nonconform", _("不符合")
    NOT_APPLICABLE = "not_applicable", _("不适用")


# (level) -> (status, evidence text)
AutoCheck = Callable[[int], tuple[Status, str]]
MANUAL = None  # a catalogue entry without a check function: the security admin records the finding

AREA_COMPUTING = _("安全计算环境")
AREA_MANAGEMENT = _("安全管理中心")

# The controls (安全控制点), named by the prefix of their checks' ids (ia.password is an IA check).
IA, AC, SA, IP = _("身份鉴别"), _("访问控制"), _("安全审计"), _("入侵防范")
DI, DC, DB, RI, PI = _("数据完整性"), _("数据保密性"), _("数据备份恢复"), _("剩余信息保护"), _("个人信息保护")
SM, AM, SEC, CC = _("系统管理"), _("审计管理"), _("安全管理"), _("集中管控")

# The controls a report lists, in the standard's order, even when no check is registered for one.
CONTROLS = [
    *((AREA_COMPUTING, control) for control in (IA, AC, SA, IP, DI, DC, DB, RI, PI)),
    *((AREA_MANAGEMENT, control) for control in (SM, AM, SEC, CC)),
]


@dataclass(frozen=True)
class Check:
    """One entry of a catalogue: a 测评指标 of one control, the clause that states it at each level."""

    id: str
    control: str  # 安全控制点, one of CONTROLS
    clause: dict  # {level: clause number}; a level missing here means the indicator does not apply
    auto: AutoCheck | None  # MANUAL (None) when the security admin assesses it
    indicator: str  # 测评指标, as the standard words it
    advice: str  # remediation advice when not conforming

    @property
    def area(self) -> str:
        return next(area for area, control in CONTROLS if str(control) == str(self.control))

    def applies_to(self, level: int) -> bool:
        return level in self.clause


_REGISTRY: dict[str, Check] = {}


def register_checks(catalogue: list[Check]) -> None:
    for check in catalogue:
        _REGISTRY[check.id] = check


def check_get(check_id: str) -> Check | None:
    return _REGISTRY.get(check_id)


def checks_for(level: int) -> list[Check]:
    """The checks of `level` by control, then in the order the standard states them (its clauses)."""
    order = {str(control): index for index, (_area, control) in enumerate(CONTROLS)}
    return sorted(
        (check for check in _REGISTRY.values() if check.applies_to(level)),
        key=lambda c: (order.get(str(c.control), 99), c.clause[level], c.id),
    )


def manual_checks() -> list[Check]:
    return [check for check in checks_for(3) if check.auto is None]


def run_checks(level: int) -> list[dict]:
    """Evaluate every check of `level`; a check that raises is reported 不符合 with the error."""
    from audit.models import ManualAssessment

    manual = {item.check_id: item for item in ManualAssessment.objects.all()}
    results = []
    for check in checks_for(level):
        kind = "auto" if check.auto else "manual"
        if check.auto is not None:
            try:
                status, evidence = check.auto(level)
            except Exception as exc:  # noqa: BLE001 - a broken check must not hide the others
                status, evidence = Status.NONCONFORM, str(_("自动检查出错：%(error)s") % {"error": exc})
        elif check.id in manual:
            status, evidence = manual[check.id].status, manual[check.id].evidence
            evidence = f"{evidence}（{manual[check.id].updated_by}，{manual[check.id].updated_at:%Y-%m-%d}）"
        else:
            status, evidence = Status.NONCONFORM, str(_("人工核查项，安全管理员尚未录入核查结果。"))
        results.append(
            {
                "id": check.id,
                "area": str(check.area),
                "control": str(check.control),
                "clause": check.clause[level],
                "indicator": str(check.indicator),
                "kind": kind,
                "status": str(status),
                "status_label": str(Status(status).label),
                "evidence": str(evidence),
                "advice": str(check.advice),
            }
        )
    return results


def compliance_rate(results: list[dict]) -> tuple[dict, Decimal]:
    counts = dict.fromkeys(Status.values, 0)
    for row in results:
        counts[row["status"]] += 1
    applicable = len(results) - counts[Status.NOT_APPLICABLE]
    if not applicable:
        return counts, Decimal("0.00")
    score = Decimal(counts[Status.CONFORM]) + Decimal("0.5") * counts[Status.PARTIAL]
    rate = (score * 100 / applicable).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return counts, rate


# --- what several checks ask -------------------------------------------------------------------


def verdict(met: bool, *, partly: bool = True) -> Status:
    """CONFORM when the indicator is met, else PARTIAL when it is `partly` met, else NONCONFORM."""
    if met:
        return Status.CONFORM
    return Status.PARTIAL if partly else Status.NONCONFORM


def beat_has(task: str) -> bool:
    """Whether Celery beat's schedule runs the task named `task`."""
    from celery import current_app

    schedule = current_app.conf.beat_schedule or {}
    return any(entry.get("task") == task for entry in schedule.values())


def second_factor_coverage(*roles: str) -> tuple[int, int]:
    """How many active accounts hold one of `roles`, and how many of them confirmed a second factor.

    The accounts are those the privileged-users hook lists: the ones that must use one.
    """
    from audit import hooks
    from audit.security import has_second_factor

    users = [user for user in hooks.privileged_users() if hooks.roles_of(user) & set(roles)]
    return len(users), sum(1 for user in users if has_second_factor(user))
