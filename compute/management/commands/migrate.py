"""``migrate``: Django's own command, and with ``--desktop`` a desktop's live migration (CONTRACT.md).

An app's command of the same name overrides Django's core one, so this one is Django's ``migrate``
itself (a subclass) whenever ``--desktop`` is absent: the same arguments, checks and output.
``migrate --desktop ID [--host NAME] [--json]`` moves the desktop to that host (placement's choice
without ``--host``), waits until it is there and prints ``{"desktop", "from", "to", "downtime_ms"}``.
"""

import json
import time

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate

from common.errors import ServiceError
from compute.models import Desktop, DesktopMigration, Host
from compute.services import desktop_migrate


class Command(DjangoMigrate):
    help = DjangoMigrate.help + " With --desktop ID: live-migrate that desktop to another host instead."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--desktop", type=int, help="live-migrate this desktop (not a schema migration)")
        parser.add_argument("--host", help="with --desktop: the target host (default: placement's choice)")
        parser.add_argument("--json", action="store_true", help="with --desktop: print one JSON object")
        parser.add_argument("--wait", type=float, default=600, help="with --desktop: seconds to wait for the end")

    def handle(self, *args, **options):
        if options.get("desktop") is None:
            if options.get("host") or options.get("json"):
                raise CommandError("--host and --json go with --desktop")
            return super().handle(*args, **options)
        return self._desktop(options)

    def _desktop(self, options):
        desktop = Desktop.objects.filter(pk=options["desktop"]).first()
        if desktop is None:
            raise CommandError(f"desktop_not_found: no desktop {options['desktop']}")
        host = None
        if options.get("host"):
            host = Host.objects.filter(endpoint__name=options["host"]).first()
            if host is None:
                raise CommandError(f"host_not_found: no host {options['host']}")
        try:
            migration = desktop_migrate(actor=None, desktop=desktop, host=host)
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        migration = self._wait(migration, options["wait"])
        if migration.state != DesktopMigration.State.DONE:
            raise CommandError(f"migration_{migration.state}: {migration.error or 'not finished in time'}")
        result = {
            "desktop": desktop.pk,
            "from": migration.source_name,
            "to": migration.target_name,
            "downtime_ms": migration.downtime_ms,
        }
        if options.get("json"):
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(
                f"desktop {desktop.pk} moved from {result['from']} to {result['to']} "
                f"(downtime {result['downtime_ms']} ms)"
            )

    @staticmethod
    def _wait(migration: DesktopMigration, seconds: float) -> DesktopMigration:
        deadline = time.monotonic() + seconds
        while True:
            migration.refresh_from_db()
            if migration.finished or time.monotonic() > deadline:
                return migration
            time.sleep(0.25)
