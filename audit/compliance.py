"""等保 2.0 self-assessment (自查/差距分析): the registry of checks and the compliance rate.

One check per 测评指标 of the controls of 安全计算环境 and 安全管理中心 (GB/T 22239-2019;
level 2 clauses are in chapter 7, level 3 in chapter 8). A check with an `auto` function is
evaluated against the running system; the others are manual: the security admin records a
finding with evidence (ManualAssessment), and an unrecorded manual item counts as 不符合.

Apps register checks that need their data with `register_check` (tenants does, from
`tenants/compliance.py`), so this module imports nothing of theirs.

The compliance rate is the portal's own metric, not an official score:
(符合 + 0.5 × 部分符合) / (checks that apply).
"""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import models
from django.utils.translation import gettext_lazy as _


class Status(models.TextChoices):
    CONFORM = "conform", _("符合")
    PARTIAL = "partial", _("部分符合")
    NONCONFORM = "nonconform", _("不符合")
    NOT_APPLICABLE = "not_applicable", _("不适用")


# (level) -> (status, evidence text)
AutoCheck = Callable[[int], tuple[str, str]]

AREA_COMPUTING = _("安全计算环境")
AREA_MANAGEMENT = _("安全管理中心")


@dataclass(frozen=True)
class Check:
    id: str
    area: str
    control: str  # 安全控制点, e.g. 身份鉴别
    clause: dict  # {level: clause number}; a level missing here means the indicator does not apply
    indicator: str  # 测评指标
    advice: str  # remediation advice when not conforming
    auto: AutoCheck | None = None
    order: int = 0

    def applies_to(self, level: int) -> bool:
        return level in self.clause


_REGISTRY: dict[str, Check] = {}

# The controls a report lists, in order, even when no check is registered for one.
CONTROLS = [
    (AREA_COMPUTING, _("身份鉴别")),
    (AREA_COMPUTING, _("访问控制")),
    (AREA_COMPUTING, _("安全审计")),
    (AREA_COMPUTING, _("入侵防范")),
    (AREA_COMPUTING, _("数据完整性")),
    (AREA_COMPUTING, _("数据保密性")),
    (AREA_COMPUTING, _("数据备份恢复")),
    (AREA_COMPUTING, _("剩余信息保护")),
    (AREA_COMPUTING, _("个人信息保护")),
    (AREA_MANAGEMENT, _("系统管理")),
    (AREA_MANAGEMENT, _("审计管理")),
    (AREA_MANAGEMENT, _("安全管理")),
    (AREA_MANAGEMENT, _("集中管控")),
]


def register_check(check: Check) -> None:
    _REGISTRY[check.id] = check


def check_get(check_id: str) -> Check | None:
    return _REGISTRY.get(check_id)


def checks_for(level: int) -> list[Check]:
    order = {str(control): index for index, (_area, control) in enumerate(CONTROLS)}
    return sorted(
        (check for check in _REGISTRY.values() if check.applies_to(level)),
        key=lambda c: (order.get(str(c.control), 99), c.order, c.id),
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
