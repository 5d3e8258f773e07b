"""dengbao_report --level 2|3 --output FILE.pdf: run the 等保 checks and write the self-assessment PDF."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.reports import report_pdf_bytes
from audit.services import compliance_report_create


class Command(BaseCommand):
    help = "Generate the 等保 2.0 self-assessment report (PDF)."

    def add_arguments(self, parser):
        parser.add_argument("--level", type=int, choices=[2, 3], required=True)
        parser.add_argument("--output", required=True, help="path of the PDF to write")

    def handle(self, *args, **options):
        output = Path(options["output"])
        if output.parent and not output.parent.exists():
            raise CommandError(f"directory does not exist: {output.parent}")
        report = compliance_report_create(actor=None, level=options["level"])
        output.write_bytes(report_pdf_bytes(report))
        self.stdout.write(f"level {report.level}: compliance rate {report.rate}% ({report.counts}) -> {output}")
