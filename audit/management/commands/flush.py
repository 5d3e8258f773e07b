"""Django's `flush`, lifting the audit triggers for its run.

`flush` deletes every row of every table (tests call it between transactional tests). The
audit triggers refuse DELETE for everyone, so this command, whose whole purpose is wiping
the database, drops them, flushes, and installs them again whatever happens; then it puts
back the chain head row, as the migration made it.
"""

from django.core.management.commands import flush
from django.db import connections

from audit import triggers
from audit.chain import ensure_chain_head


class Command(flush.Command):
    def handle(self, **options):
        connection = connections[options["database"]]
        triggers.remove(connection)
        try:
            return super().handle(**options)
        finally:
            triggers.install(connection)
            # An empty chain still has its head: creating it lazily under concurrent writers
            # would make them deadlock on the duplicate key (see audit.chain.chain_head_lock).
            ensure_chain_head(using=options["database"])
