"""archive_audit [--older-than DAYS] [--dir DIR]: write events past the retention period to a signed gzip file.

Events are never deleted by this command (the database triggers refuse it); the archive is
a signed copy for long-term storage, and is itself recorded in the audit log.
"""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from audit.services import archive_create


class Command(BaseCommand):
    help = "Archive audit events older than the retention period to signed, compressed files."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, default=None, help="days (never less than the retention policy)")
        parser.add_argument("--dir", default=None, help="output directory (default AUDIT_ARCHIVE_DIR)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        directory = Path(options["dir"] or settings.AUDIT_ARCHIVE_DIR)
        archive = archive_create(older_than_days=options["older_than"], directory=directory)
        payload = (
            {
                "file": str(directory / archive.file_name),
                "first_id": archive.first_id,
                "last_id": archive.last_id,
                "count": archive.count,
                "sha256": archive.sha256,
            }
            if archive
            else {"file": None, "count": 0}
        )
        self.stdout.write(json.dumps(payload) if options["json"] else ", ".join(f"{k}={v}" for k, v in payload.items()))
