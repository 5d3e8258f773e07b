"""Database triggers that make issued invoices, their lines and credit notes unchangeable.

UPDATE of these rows fails in MySQL/MariaDB and SQLite themselves, whoever asks. DELETE is
refused by the models and by PROTECT foreign keys (not by a trigger: `flush`, which wipes a
whole database between tests, deletes rows and must keep working).
"""

MESSAGE = "issued invoices are immutable"
TRIGGERS = [
    ("billing_invoice_no_update", "billing_invoice"),
    ("billing_invoiceline_no_update", "billing_invoiceline"),
    ("billing_creditnote_no_update", "billing_creditnote"),
]


def _create_sql(vendor: str, name: str, table: str) -> str:
    # Names are the constants above, never input.
    if vendor == "mysql":
        signal = f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{MESSAGE}'"
        return f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW {signal}"  # noqa: S608
    return f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"  # noqa: S608


def install(connection) -> None:
    if connection.vendor not in ("mysql", "sqlite"):
        return
    with connection.cursor() as cursor:
        for name, table in TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(_create_sql(connection.vendor, name, table))


def remove(connection) -> None:
    if connection.vendor not in ("mysql", "sqlite"):
        return
    with connection.cursor() as cursor:
        for name, _table in TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
