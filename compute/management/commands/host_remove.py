"""Remove a compute node that holds no desktops; one that does is refused."""

import json

from django.core.management.base import BaseCommand, CommandError

from common.errors import ServiceError
from compute.services import host_remove


class Command(BaseCommand):
    help = "Remove a compute node; refused while desktops are on it (maintenance first, then move them)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        try:
            host_remove(actor=None, name=options["name"])
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(json.dumps({"removed": options["name"]}) if options["json"] else f"removed {options['name']}")
