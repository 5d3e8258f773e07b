"""Migration tests on a database of their own.

A migration test takes the schema back to a migration before the one it checks and forward again. Done
on the test process's own test database, a step that fails leaves that database half-migrated for every
test after it in the process (seen on a fresh machine: the next test's fixtures met the old columns).
Here the default connection is pointed at a database made for the test and dropped after it; the alias
stays ``default`` because the migrations' own code (RunPython) writes through it.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(targets) -> "object":
    """Migrate the default connection's database to ``targets``; returns the app registry of that state."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest_targets() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@contextmanager
def database_of_its_own(django_db_blocker, *, latest: bool = False) -> Iterator[str]:
    """The default connection on a new, empty database (migrated to the latest state with ``latest``)
    for the duration; the test database is left as it was. Yields the database's name."""
    with django_db_blocker.unblock():
        test_database = connection.settings_dict["NAME"]
        own = f"{test_database}_migrations"[:64]
        test = connection.settings_dict["TEST"]
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{own}`")
            cursor.execute(f"CREATE DATABASE `{own}` CHARACTER SET {test['CHARSET']} COLLATE {test['COLLATION']}")
        connection.close()
        connection.settings_dict["NAME"] = own
        try:
            if latest:
                migrate(latest_targets())
            yield own
        finally:
            connection.close()
            connection.settings_dict["NAME"] = test_database
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{own}`")
