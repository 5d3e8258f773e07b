"""Database triggers that make the audit table append-only for everyone, the portal included.

MySQL/MariaDB and SQLite get the same rule: UPDATE and DELETE of an audit event fail in the
database itself, and so do removing the chain head and moving it back (a lower `last_id`, or
another hash or signature at the same one: what hiding a truncated tail would take). The
migration installs them;
`flush` (which exists to wipe a whole database, e.g. between tests) lifts them for its run.
"""

EVENT_TABLE = "audit_auditevent"
HEAD_TABLE = "audit_auditchainhead"
MESSAGE = "audit events are append-only"
# The head only moves forward: to a later event, never back, never sideways.
HEAD_REWIND = (
    "NEW.id <> OLD.id OR NEW.last_id < OLD.last_id OR (NEW.last_id = OLD.last_id AND "
    "(NEW.last_hash <> OLD.last_hash OR NEW.signature <> OLD.signature))"
)

# (name, timing, table, condition: None refuses every row)
TRIGGERS = [
    ("audit_event_no_update", "BEFORE UPDATE", EVENT_TABLE, None),
    ("audit_event_no_delete", "BEFORE DELETE", EVENT_TABLE, None),
    ("audit_head_no_delete", "BEFORE DELETE", HEAD_TABLE, None),
    ("audit_head_no_rewind", "BEFORE UPDATE", HEAD_TABLE, HEAD_REWIND),
]


def _create_sql(vendor: str, name: str, timing: str, table: str, condition: str | None = None) -> str:
    if vendor == "mysql":
        signal = f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{MESSAGE}'"
        body = f"BEGIN IF {condition} THEN {signal}; END IF; END" if condition else signal
        return f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW {body}"
    if vendor == "sqlite":
        when = f" WHEN {condition}" if condition else ""
        return f"CREATE TRIGGER {name} {timing} ON {table}{when} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    return ""


def supported(connection) -> bool:
    return connection.vendor in ("mysql", "sqlite")


def install(connection, names: set[str] | None = None) -> None:
    """(Re)create the triggers; `names` limits it to some (a migration installs those of its schema)."""
    if not supported(connection):
        return
    tables = set(connection.introspection.table_names())
    with connection.cursor() as cursor:
        for name, timing, table, condition in TRIGGERS:
            if table not in tables or (names is not None and name not in names):
                continue
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(_create_sql(connection.vendor, name, timing, table, condition))


def remove(connection) -> None:
    if not supported(connection):
        return
    with connection.cursor() as cursor:
        for name, *_rest in TRIGGERS:
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
    return names & {name for name, *_rest in TRIGGERS}
