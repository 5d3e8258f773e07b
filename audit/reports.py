"""The 等保 self-assessment report as a PDF (WeasyPrint), laid out like an assessment report."""

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone, translation

from audit.compliance import CONTROLS, Status


def grouped_results(report) -> list[dict]:
    """Rows grouped by area and control point, in the standard's order, for the table."""
    groups = []
    for area, control in CONTROLS:
        rows = [row for row in report.results if row["control"] == str(control)]
        if rows:
            groups.append({"area": str(area), "control": str(control), "rows": rows})
    return groups


def problems(report) -> list[dict]:
    return [row for row in report.results if row["status"] in (Status.NONCONFORM, Status.PARTIAL)]


def report_filename(report) -> str:
    return f"dengbao-level{report.level}-{timezone.localtime(report.created_at):%Y%m%d-%H%M}.pdf"


def report_html(report) -> str:
    with translation.override("zh-hans"):
        return render_to_string(
            "audit/report_pdf.html",
            {
                "report": report,
                "groups": grouped_results(report),
                "problems": problems(report),
                "portal_name": settings.PORTAL_NAME,
                "applicable": len(report.results) - report.counts.get(Status.NOT_APPLICABLE, 0),
                "counts": {str(Status(key).label): value for key, value in report.counts.items()},
            },
        )


def report_pdf_bytes(report) -> bytes:
    from weasyprint import HTML

    return HTML(string=report_html(report), base_url=str(settings.BASE_DIR)).write_pdf()
