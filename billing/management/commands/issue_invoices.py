"""`issue_invoices --month YYYY-MM [--json]`: one invoice per billed tenant for a past month.

Idempotent: a second run issues nothing new (`skipped` counts the tenants already invoiced).
"""

import json

from django.core.management.base import BaseCommand, CommandError

from billing.services import invoices_issue
from common.errors import ServiceError


class Command(BaseCommand):
    help = "Issue the invoices of a past month (YYYY-MM) for every billed tenant."

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, help="the month to bill, YYYY-MM")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        try:
            result = invoices_issue(month=options["month"])
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        if options["json"]:
            self.stdout.write(json.dumps({"issued": result.issued, "skipped": result.skipped}, ensure_ascii=False))
        else:
            self.stdout.write(
                f"issued {len(result.issued)}: {', '.join(result.issued) or '-'}; skipped {result.skipped}"
            )
