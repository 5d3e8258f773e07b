"""Put a compute node into maintenance (no new desktops placed there) or take it out (CONTRACT.md)."""

import json

from django.core.management.base import BaseCommand, CommandError

from common.errors import ServiceError
from compute.services import evacuation_status, host_maintenance


class Command(BaseCommand):
    help = (
        "Maintenance on: no new desktop is placed on the host and its desktops move to other hosts of its"
        " cluster; off: it takes desktops again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("mode", choices=["on", "off"])
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        try:
            host = host_maintenance(actor=None, name=options["name"], on=options["mode"] == "on")
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        result = {"host": host.name, "state": host.state}
        if host.state == host.State.MAINTENANCE:
            # What the evacuation started: desktops on their way, and those that cannot move (why).
            status = evacuation_status(host)
            result["moving"] = status["counts"]["queued"] + status["counts"]["running"] + status["counts"]["done"]
            result["not_moved"] = [
                {"desktop": m.desktop_id, "name": m.desktop.name, "reason": m.error} for m in status["not_moved"]
            ]
        if options["json"]:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
        else:
            self.stdout.write(f"host {host.name}: {host.state}")
            for row in result.get("not_moved", []):
                self.stdout.write(f"  not moved: desktop {row['desktop']} ({row['name']}): {row['reason']}")
