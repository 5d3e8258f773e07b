"""Take a vCenter endpoint's existing VMs over into a tenant as desktops (idempotent)."""

import json

from django.core.management.base import BaseCommand, CommandError

from common.errors import ServiceError
from compute.reconcile import vcenter_import


class Command(BaseCommand):
    help = (
        "Import the VMs of an endpoint into a tenant; a second run creates nothing new. "
        "Each imported VM is charged to the tenant's quota (vCPU, RAM, disk, one desktop). A VM that "
        "does not fit is still imported (it already runs; refusing it would leave it unmanaged) but "
        "left uncharged and listed under over_quota with the reason; a later run charges it once the "
        "quota allows. The exit status stays 0: an overage is a finding, not a failure."
    )

    def add_arguments(self, parser):
        parser.add_argument("--endpoint", required=True, help="endpoint name")
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        try:
            result = vcenter_import(
                actor=None, endpoint_name=options["endpoint"], tenant_slug=options["tenant"], dry_run=options["dry_run"]
            )
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
            return
        prefix = "(dry run) " if options["dry_run"] else ""
        self.stdout.write(
            f"{prefix}created {result['created']}, updated {result['updated']}, unchanged {result['unchanged']}, "
            f"charged to quota {result['charged']}, over quota {len(result['over_quota'])}, "
            f"errors {len(result['errors'])} in {result['seconds']} s"
        )
        for error in result["errors"]:
            self.stderr.write(f"  {error['vm']}: {error['error']}")
        if result["over_quota"]:
            verb = "would be" if options["dry_run"] else "were"
            self.stderr.write(
                f"WARNING: {len(result['over_quota'])} VMs {verb} imported without being charged to the quota "
                "of the tenant (raise the quota and run again to charge them):"
            )
            for item in result["over_quota"]:
                self.stderr.write(f"  {item['vm']}: {item['message']}")
