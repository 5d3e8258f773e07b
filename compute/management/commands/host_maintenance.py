"""Put a compute node into maintenance (no new desktops placed there) or take it out (CONTRACT.md)."""

import json

from django.core.management.base import BaseCommand, CommandError

from common.errors import ServiceError
from compute.services import host_maintenance


class Command(BaseCommand):
    help = "Maintenance on: no new desktop is placed on the host; off: it takes desktops again."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("mode", choices=["on", "off"])
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        try:
            host = host_maintenance(actor=None, name=options["name"], on=options["mode"] == "on")
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        if options["json"]:
            self.stdout.write(json.dumps({"host": host.name, "state": host.state}))
        else:
            self.stdout.write(f"host {host.name}: {host.state}")
