"""Load the demo data of CONTRACT.md: tenants, accounts and, per app, a life to look at."""

import json

from django.core.management.base import BaseCommand

from audit import demo as audit_demo
from billing import demo as billing_demo
from compute import demo as compute_demo
from compute import networking as compute_networking
from compute.classroom import demo as classroom_demo
from network import demo as network_demo
from tenants import demo as tenants_demo

# Apps seed in dependency order; each app's demo module is idempotent.
SEEDERS = [
    ("tenants", tenants_demo.seed),
    ("compute", compute_demo.seed),
    ("network", network_demo.seed),  # before the classroom: CS101's desktops join the cs network
    ("classroom", classroom_demo.seed),
    ("network-bindings", compute_networking.seed_bindings),
    ("billing", billing_demo.seed),
    ("audit", audit_demo.seed),  # last: TOTP for the accounts above, and a month of audit history
]


class Command(BaseCommand):
    help = "Create the demo tenants, accounts and data (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        summary = {name: seed() for name, seed in SEEDERS}
        if options["json"]:
            self.stdout.write(json.dumps(summary, ensure_ascii=False))
        else:
            for name, counts in summary.items():
                self.stdout.write(f"{name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
