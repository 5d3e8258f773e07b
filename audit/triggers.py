"""Database triggers that make the audit table append-only for everyone, the portal included.

MySQL/MariaDB and SQLite get the same rule: UPDATE and DELETE of an audit event fail in the
database itself, and so does removing the chain head. The migration installs them;
`flush` (which exists to wipe a whole database, e.g. between tests) lifts them for its run.
"""

EVENT_TABLE = "audit_auditevent"
HEAD_TABLE = "audit_auditchainhead"
MESSAGE = "audit events are append-only"

# (name, timing, table)
TRIGGERS = [
    ("audit_event_no_update", "BEFORE UPDATE", EVENT_TABLE),
    ("audit_event_no_delete", "BEFORE DELETE", EVENT_TABLE),
    ("audit_head_no_delete", "BEFORE DELETE", HEAD_TABLE),
]


def _create_sql(vendor: str, name: str, timing: str, table: str) -> str:
    if vendor == "mysql":
        return (
            f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW "
            f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{MESSAGE}'"
        )
    if vendor == "sqlite":
        return f"CREATE TRIGGER {name} {timing} ON {table} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    return ""


def supported(connection) -> bool:
    return connection.vendor in ("mysql", "sqlite")


def install(connection) -> None:
    if not supported(connection):
        return
    tables = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for name, timing, table in TRIGGERS:
            if table not in tables:
                continue
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(_create_sql(connection.vendor, name, timing, table))


def remove(connection) -> None:
    if not supported(connection):
        return
    with connection.cursor() as cursor:
        for name, _timing, _table in TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


def installed(connection) -> set[str]:
    """Names of the audit triggers present in the database."""
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()")
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        else:
            return set()
        names = {row[0] for row in cursor.fetchall()}
    return names & {name for name, _t, _tb in TRIGGERS}
