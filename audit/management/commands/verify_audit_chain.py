"""verify_audit_chain [--json]: check the whole audit hash chain; exit 1 and name the first bad event if broken."""

import json

from django.core.management.base import BaseCommand

from audit.services import alert_chain_broken, chain_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain and name the first bad event."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help='print {"ok", "checked", "first_bad"}')

    def handle(self, *args, **options):
        result = chain_verify(source="command")
        if options["json"]:
            self.stdout.write(json.dumps(result.as_json()))
        elif result.ok:
            self.stdout.write(f"ok: {result.checked} events verified in {result.seconds:.2f} s")
        else:
            self.stdout.write(
                f"BROKEN at event {result.first_bad}: {result.reason} ({result.checked} verified before it)"
            )
        if not result.ok:
            alert_chain_broken(result)
            raise SystemExit(1)
