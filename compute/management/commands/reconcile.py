"""Compare every endpoint's real inventory with the database (CONTRACT.md: --json prints one object)."""

import json

from django.core.management.base import BaseCommand

from compute.reconcile import reconcile


class Command(BaseCommand):
    help = "Fix power-state drift, mark desktops whose VM vanished, list orphan VMs (untouched)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        summary = reconcile()
        if options["json"]:
            self.stdout.write(json.dumps(summary, ensure_ascii=False))
            return
        self.stdout.write(
            f"drift fixed: {summary['drift_fixed']}, missing: {summary['missing']}, orphans: {summary['orphans']}"
        )
        for orphan in summary["orphan_vms"]:
            self.stdout.write(f"  orphan: {orphan['endpoint']}/{orphan['name']}")
        for error in summary["errors"]:
            self.stderr.write(f"  error: {error['endpoint']}: {error['error']}")
