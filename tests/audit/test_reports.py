"""等保 self-assessment: the checks, the rate, and the PDF read back with pdftotext/pdffonts."""

import subprocess
from decimal import Decimal

import pytest
from django.core.management import call_command

from audit.actions import Action
from audit.compliance import CONTROLS, Status, checks_for, compliance_rate, run_checks
from audit.models import AuditEvent, ComplianceReport
from audit.services import compliance_report_create, manual_assessment_record
from common.errors import Forbidden


def _pdf_text(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def _status(results, check_id):
    return next(row["status"] for row in results if row["id"] == check_id)


def test_the_rate_counts_partial_as_half_and_ignores_not_applicable():
    rows = [{"status": s} for s in ("conform", "conform", "partial", "nonconform", "not_applicable")]
    counts, rate = compliance_rate(rows)
    assert rate == Decimal("62.50")
    assert counts == {"conform": 2, "partial": 1, "nonconform": 1, "not_applicable": 1}


@pytest.mark.django_db
def test_level_two_omits_level_three_only_indicators(scenario):
    level2 = {row["id"] for row in run_checks(2)}
    level3 = {row["id"] for row in run_checks(3)}
    assert "ia.mfa" in level3 and "ia.mfa" not in level2
    assert "dc.storage" not in level2
    assert level2 < level3


@pytest.mark.django_db
def test_the_pdf_lists_every_control_and_the_computed_rate(scenario, tmp_path):
    output = tmp_path / "report.pdf"
    call_command("dengbao_report", "--level", "3", "--output", str(output))

    report = ComplianceReport.objects.get()
    text = _pdf_text(output)
    compact = text.replace(" ", "")
    for _area, control in CONTROLS:
        assert str(control) in compact, control
    for heading in ("安全控制点", "测评指标", "结果记录", "符合情况", "整改建议", "自查"):
        assert heading in compact
    assert f"{report.rate}%" in compact
    assert "本门户自定义" in compact
    fonts = subprocess.run(["pdffonts", str(output)], capture_output=True, text=True, check=True).stdout
    assert "Noto-Sans-CJK-SC" in fonts or "NotoSansCJKsc" in fonts
    assert AuditEvent.objects.filter(action=Action.COMPLIANCE_REPORT_CREATED).exists()


@pytest.mark.django_db
def test_turning_lockout_off_marks_login_failure_handling_nonconforming(scenario, settings, tmp_path):
    assert _status(run_checks(3), "ia.lockout") == Status.CONFORM
    settings.AXES_ENABLED = False

    results = run_checks(3)

    assert _status(results, "ia.lockout") == Status.NONCONFORM
    output = tmp_path / "weak.pdf"
    call_command("dengbao_report", "--level", "2", "--output", str(output))
    text = _pdf_text(output).replace(" ", "")
    assert "未启用" in text and "不符合" in text


@pytest.mark.django_db
def test_separation_of_duties_and_default_passwords_are_checked_against_the_accounts(scenario, settings):
    from tests.factories import PASSWORD

    assert _status(run_checks(3), "ac.separation") == Status.CONFORM
    settings.DEMO_PASSWORD = PASSWORD
    from tests.factories import UserFactory

    UserFactory(username="admin")  # a default name still on the default (demo) password
    assert _status(run_checks(3), "ac.defaults") == Status.NONCONFORM


@pytest.mark.django_db
def test_manual_findings_are_recorded_by_the_security_admin_only(scenario):
    assert _status(run_checks(3), "ip.minimal") == Status.NONCONFORM  # not yet assessed
    manual_assessment_record(
        actor=scenario.secadmin, check_id="ip.minimal", status="conform", evidence="软件清单已核对"
    )
    assert _status(run_checks(3), "ip.minimal") == Status.CONFORM
    with pytest.raises(Forbidden):
        manual_assessment_record(actor=scenario.auditor, check_id="ip.minimal", status="conform", evidence="x")
    assert AuditEvent.objects.filter(action=Action.COMPLIANCE_ASSESSED).count() == 1


@pytest.mark.django_db
def test_teachers_cannot_generate_reports(scenario):
    with pytest.raises(Forbidden):
        compliance_report_create(actor=scenario.teacher, level=3)


@pytest.mark.django_db
def test_every_automatic_check_answers_with_a_status_member(scenario):
    automatic = [check for check in checks_for(3) if check.auto is not None]
    assert {check.id for check in automatic} >= {"ia.password", "ac.accounts", "sm.sysadmin", "cc.events"}
    for check in automatic:
        status, evidence = check.auto(3)
        assert isinstance(status, Status), (check.id, status)
        assert evidence, check.id


@pytest.mark.django_db
@pytest.mark.parametrize("level", [2, 3])
def test_a_report_lists_each_controls_indicators_in_the_order_of_their_clauses(scenario, level):
    rows = run_checks(level)
    controls = [str(control) for _area, control in CONTROLS]
    assert [controls.index(row["control"]) for row in rows] == sorted(controls.index(row["control"]) for row in rows)
    for control in controls:
        clauses = [row["clause"] for row in rows if row["control"] == control]
        assert clauses == sorted(clauses), control
    assert [row["id"] for row in rows if row["id"].startswith("am.")] == ["am.auditadmin", "am.analysis"]


@pytest.mark.django_db
def test_without_the_periodic_chain_verification_the_audit_process_is_unprotected(scenario, settings, monkeypatch):
    from celery import current_app

    settings.ADMINS = [("Security", "security@example.edu")]
    assert _status(run_checks(3), "sa.process") == Status.CONFORM
    assert _status(run_checks(3), "cc.events") == Status.CONFORM

    monkeypatch.setitem(current_app.conf, "beat_schedule", {})

    assert _status(run_checks(3), "sa.process") == Status.NONCONFORM
    assert _status(run_checks(3), "cc.events") == Status.PARTIAL


@pytest.mark.django_db
def test_a_platform_admin_conforms_once_every_holder_of_the_role_has_a_second_factor(scenario):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    assert _status(run_checks(3), "sm.sysadmin") == Status.PARTIAL
    TOTPDevice.objects.create(user=scenario.sysadmin, name="phone", confirmed=True)

    assert _status(run_checks(3), "sm.sysadmin") == Status.CONFORM
    assert _status(run_checks(3), "sec.secadmin") == Status.PARTIAL  # another role, another holder


def test_the_retention_evidence_names_the_earliest_time_in_the_log_not_the_first_id(scenario):
    from datetime import timedelta

    from django.utils import timezone

    from audit import chain
    from audit.checks import audit_retention

    now = timezone.now()
    chain.append_many([AuditEvent(occurred_at=now, actor_username="x", action=str(Action.LOGIN_FAILED))])
    earlier = now - timedelta(days=30)
    chain.append_many([AuditEvent(occurred_at=earlier, actor_username="y", action=str(Action.LOGIN_FAILED))])

    _status_, evidence = audit_retention(3)

    assert timezone.localtime(earlier).strftime("%Y-%m-%d") in evidence
