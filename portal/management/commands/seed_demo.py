"""Load the demo data of CONTRACT.md: tenants, accounts and, per app, a life to look at."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit import demo as audit_demo
from billing import demo as billing_demo
from common.db import retry_on_deadlock
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
        parser.add_argument(
            "--force-production",
            action="store_true",
            help="seed although DJANGO_ENV=production (needs a DEMO_PASSWORD of your own)",
        )

    def _guard(self, force: bool) -> None:
        """The demo accounts (三员 among them) carry one password: public by default, never in production."""
        public = settings.DEMO_PASSWORD == settings.DEMO_PASSWORD_DEFAULT
        if settings.PRODUCTION:
            if not force:
                raise CommandError(
                    "seed_demo refuses to run with DJANGO_ENV=production: it creates accounts, platform admins "
                    "among them, that share one password. Use --force-production with your own DEMO_PASSWORD."
                )
            if public:
                raise CommandError("--force-production needs a DEMO_PASSWORD other than the documented default.")
        elif public:
            self.stderr.write(
                "WARNING: the demo accounts get the public password from README.md (DEMO_PASSWORD unset); "
                "anyone who can reach this portal can sign in as its administrators."
            )

    def handle(self, *args, **options):
        self._guard(options["force_production"])
        # Beside a live worker (`make run`) the classroom's desktops are being made while later apps
        # seed, and MariaDB may pick a seeding transaction as a deadlock victim: every seeder is
        # idempotent, so it runs again, as retry_on_deadlock runs a service's transaction again.
        summary = {name: retry_on_deadlock(seed)() for name, seed in SEEDERS}
        if options["json"]:
            self.stdout.write(json.dumps(summary, ensure_ascii=False))
        else:
            for name, counts in summary.items():
                self.stdout.write(f"{name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
