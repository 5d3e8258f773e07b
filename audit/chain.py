"""The hash chain of the audit log: the key, the canonical form, the append lock and the verifier.

Each event stores `prev_hash` (the previous event's `hash`) and
`hash = HMAC-SHA256(key, canonical form of the event including prev_hash)`.
Changing, removing or reordering an event breaks the chain from that event on; without
the key nobody can forge a consistent replacement.

The key is settings.AUDIT_HMAC_KEY. Production refuses to start without it; in development,
when it is empty, the key is derived from SECRET_KEY (HMAC-SHA256(SECRET_KEY,
"campuscloud.audit.chain.v1")), so a changed SECRET_KEY makes an old development chain
fail verification.

Appends are serialized by locking the single chain-head row (`chain_head_lock`) inside the
caller's transaction: concurrent writers queue on it instead of forking the chain, and a
rolled-back transaction rolls the head back with its event.

A truncated tail is what a database user without the key could still try: remove the last
events and set the head back to match. The head carries an HMAC of its position (which they
cannot compute), a trigger refuses moving it back, and the verifier compares the head with
the last stored event even when none is left. The first stored event may link to an archive
only when that archive's file is there and its HMAC verifies (`archive_trusted`).
"""

import gzip
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils.dateparse import parse_datetime

from audit.models import GENESIS_HASH, AuditArchive, AuditChainHead, AuditEvent, canonical_json

# The columns the HMAC covers, in order. `hash` itself is not among them.
HASHED_FIELDS = (
    "id",
    "occurred_at",
    "actor_id",
    "actor_username",
    "actor_role",
    "tenant_slug",
    "source_ip",
    "user_agent",
    "request_id",
    "action",
    "object_type",
    "object_id",
    "object_name",
    "result",
    "reason",
    "detail",
    "prev_hash",
)
_DETAIL = HASHED_FIELDS.index("detail")
VERSION = b"cc-audit-v2\x00"
CHUNK = 20_000

_key_cache: tuple[str, str, bytes] | None = None


def chain_key() -> bytes:
    global _key_cache
    configured, secret = settings.AUDIT_HMAC_KEY, settings.SECRET_KEY
    if _key_cache and _key_cache[:2] == (configured, secret):
        return _key_cache[2]
    if configured:
        key = configured.encode()
    else:
        key = hmac.digest(secret.encode(), b"campuscloud.audit.chain.v1", "sha256")
    _key_cache = (configured, secret, key)
    return key


def _when(value) -> str:
    if isinstance(value, str):
        if value[10:11] == "T":  # already formatted by the database (see verify)
            return value
        value = parse_datetime(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def canonical(values) -> bytes:
    """The fields joined by NUL. Writers strip NUL from every text (services._clip), so a row has
    exactly 16 separators and no change of field contents can move a boundary unnoticed."""
    actor_id = values[2]
    return (
        VERSION
        + "\x00".join(
            (str(values[0]), _when(values[1]), "" if actor_id is None else str(actor_id), *values[3:])
        ).encode()
    )


def event_hash(values, key: bytes | None = None) -> str:
    return hmac.digest(key or chain_key(), canonical(values), "sha256").hex()


def values_of(event: AuditEvent) -> tuple:
    row = [getattr(event, name) for name in HASHED_FIELDS]
    row[_DETAIL] = canonical_json(event.detail)
    return tuple(row)


def head_signature(last_id: int, last_hash: str, key: bytes | None = None) -> str:
    return hmac.digest(key or chain_key(), b"cc-audit-head\x00%d\x00%s" % (last_id, last_hash.encode()), "sha256").hex()


def _genesis() -> dict:
    return {"last_id": 0, "last_hash": GENESIS_HASH, "signature": head_signature(0, GENESIS_HASH)}


def _head_move(last_id: int, last_hash: str, key: bytes | None = None) -> None:
    AuditChainHead.objects.filter(pk=1).update(
        last_id=last_id, last_hash=last_hash, signature=head_signature(last_id, last_hash, key)
    )


def ensure_chain_head(using: str = "default") -> None:
    """The head row exists from the migration on; `flush` puts it back (outside any writer's transaction)."""
    from django.db import DEFAULT_DB_ALIAS

    if AuditChainHead._meta.db_table not in connection.introspection.table_names():
        return
    AuditChainHead.objects.using(using or DEFAULT_DB_ALIAS).get_or_create(pk=1, defaults=_genesis())


def chain_head_lock() -> AuditChainHead:
    """Lock and return the chain head. Must run inside a transaction; the lock lasts until it ends."""
    try:
        return AuditChainHead.objects.select_for_update().get(pk=1)
    except AuditChainHead.DoesNotExist:
        pass
    # Only a database whose head row was never made (flush puts it back) gets here.
    try:
        with transaction.atomic():
            AuditChainHead.objects.create(pk=1, **_genesis())
    except IntegrityError:
        pass
    return AuditChainHead.objects.select_for_update().get(pk=1)


def archive_trusted(archive: AuditArchive, directory: Path | None = None) -> bool:
    """The archive's file is there, its SHA-256 and HMAC (chain key) verify, and it holds the events
    its row names: a row inserted or edited by hand anchors nothing."""
    path = Path(directory or settings.AUDIT_ARCHIVE_DIR) / Path(archive.file_name).name
    try:
        data = path.read_bytes()
        digest, signature = file_signature(data)
        if not (hmac.compare_digest(digest, archive.sha256) and hmac.compare_digest(signature, archive.signature)):
            return False
        lines = gzip.decompress(data).decode().splitlines()
        first, last = json.loads(lines[0]), json.loads(lines[-1])
    except (OSError, ValueError, IndexError, EOFError):
        return False
    return (first["id"], last["id"], last["hash"], len(lines)) == (
        archive.first_id,
        archive.last_id,
        archive.last_hash,
        archive.count,
    )


def _anchor_before(first_id: int) -> str | None:
    """What the first stored event must link to: genesis, or the trusted archive that ends just before it.

    Archiving never deletes (the triggers refuse); an operator who later removes archived
    rows leaves the chain starting after an archive, whose signed file names the last hash.
    None: no archive ends there whose signature verifies.
    """
    if first_id == 1:
        return GENESIS_HASH
    archive = AuditArchive.objects.filter(last_id=first_id - 1).first()
    return archive.last_hash if archive is not None and archive_trusted(archive) else None


def _anchor_of_empty_chain() -> tuple[int, str]:
    """Where a chain with no stored event ends: after the last trusted archive, or at genesis."""
    for archive in AuditArchive.objects.order_by("-last_id")[:1]:
        if archive_trusted(archive):
            return archive.last_id, archive.last_hash
    return 0, GENESIS_HASH


def append(event: AuditEvent) -> AuditEvent:
    """Give `event` its place in the chain and insert it (caller's transaction, head locked)."""
    # No savepoint inside the caller's transaction (two round trips saved per event): if the
    # insert fails, the caller's whole transaction fails with it, which is the rule anyway.
    with transaction.atomic(savepoint=False):
        head = chain_head_lock()
        event.id = head.last_id + 1
        event.prev_hash = head.last_hash
        event.hash = event_hash(values_of(event))
        event.save(force_insert=True)
        _head_move(event.id, event.hash)
    return event


def append_many(events: list[AuditEvent], batch_size: int = 5000, *, savepoint: bool = True) -> int:
    """Bulk append in chain order (demo history, benchmarks, ``services.events_batched``): one lock,
    batched inserts. ``savepoint`` False: in the caller's transaction, as ``append`` does."""
    with transaction.atomic(savepoint=savepoint):
        head = chain_head_lock()
        last_id, last_hash = head.last_id, head.last_hash
        key = chain_key()
        for event in events:
            last_id += 1
            event.id, event.prev_hash = last_id, last_hash
            event.hash = last_hash = event_hash(values_of(event), key)
        AuditEvent.objects.bulk_create(events, batch_size=batch_size)
        _head_move(last_id, last_hash, key)
    return len(events)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad: int | None
    reason: str = ""
    seconds: float = 0.0

    def as_json(self) -> dict:
        return {"ok": self.ok, "checked": self.checked, "first_bad": self.first_bad, "reason": self.reason}


def _select_sql() -> tuple[str, bool]:
    """The keyset page query, and whether it returns (id, canonical bytes, prev_hash, hash).

    On MySQL/MariaDB the database builds the canonical form itself (CONCAT_WS with NUL, the
    timestamp formatted as Python's isoformat): one value per event instead of seventeen to
    convert, which is most of the verifier's time. Elsewhere rows come back column by column.
    """
    quote = connection.ops.quote_name
    table, pk = quote(AuditEvent._meta.db_table), quote("id")
    names = [quote(name) for name in HASHED_FIELDS]
    if connection.vendor == "mysql":
        names[1] = f"DATE_FORMAT({names[1]}, '%%Y-%%m-%%dT%%H:%%i:%%s.%%f')"
        names[2] = f"IFNULL({names[2]}, '')"
        joined = f"CONCAT_WS(CHAR(0), {', '.join(names)})"
        columns = f"{pk}, {joined}, {quote('prev_hash')}, {quote('hash')}"
        return f"SELECT {columns} FROM {table} WHERE {pk} > %s ORDER BY {pk} LIMIT %s", True  # noqa: S608
    columns = ", ".join([*names, quote("hash")])
    return f"SELECT {columns} FROM {table} WHERE {pk} > %s ORDER BY {pk} LIMIT %s", False  # noqa: S608


def _pages(sql: str, chunk: int):
    """Keyset pages of raw rows, fetched one page ahead in a thread of their own.

    The database builds and sends the next page (the driver releases the GIL meanwhile)
    while this thread hashes the current one. The reader uses its own connection.
    """
    import queue
    import threading

    from django.db import connections

    pages: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read():
        try:
            last_id = 0
            with connections["default"].cursor() as cursor:
                while not stop.is_set():
                    cursor.execute(sql, [last_id, chunk])
                    rows = cursor.fetchall()
                    pages.put(rows)
                    if not rows:
                        return
                    last_id = rows[-1][0]
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            pages.put(exc)
        finally:
            connections.close_all()

    reader = threading.Thread(target=read, name="audit-verify-reader", daemon=True)
    reader.start()
    try:
        while True:
            rows = pages.get()
            if isinstance(rows, Exception):
                raise rows
            if not rows:
                return
            yield rows
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            try:
                pages.get_nowait()
            except queue.Empty:
                reader.join(0.05)


def _sequential_pages(sql: str, chunk: int):
    last_id = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, [last_id, chunk])
            rows = cursor.fetchall()
            if not rows:
                return
            yield rows
            last_id = rows[-1][0]


def verify(chunk: int = CHUNK) -> VerifyResult:
    """Walk the whole chain in id order, streaming raw rows in keyset pages (no model instances)."""
    started = time.monotonic()
    key = chain_key()
    sql, prebuilt = _select_sql()
    expected_prev, last_id, checked = None, 0, 0
    digest = hmac.digest
    # In a transaction (tests, callers holding locks) a second connection would not see its
    # rows; SQLite serializes connections anyway. Read ahead only in autocommit on MySQL.
    ahead = prebuilt and connection.get_autocommit() and not connection.in_atomic_block
    pages = _pages(sql, chunk) if ahead else _sequential_pages(sql, chunk)
    for rows in pages:
        if expected_prev is None:
            expected_prev = _anchor_before(rows[0][0])
            if expected_prev is None:
                return _bad(rows[0][0], 0, "no archive whose signature verifies ends before this event", started)
        for row in rows:
            stored = row[-1]
            if row[-2] != expected_prev:
                return _bad(row[0], checked, "prev_hash does not link to the previous event", started)
            if prebuilt:
                data = row[1] if isinstance(row[1], bytes) else row[1].encode()
                ok = digest(key, VERSION + data, "sha256").hex() == stored or _row_matches(row[0], key)
            else:
                values = row[:-1]
                ok = digest(key, canonical(values), "sha256").hex() == stored or _matches_normalized(
                    values, stored, key
                )
            if not ok:
                return _bad(row[0], checked, "content does not match its HMAC", started)
            expected_prev = stored
            checked += 1
        last_id = rows[-1][0]
    if expected_prev is None:  # no event stored at all: the head must still be where the archives end
        last_id, expected_prev = _anchor_of_empty_chain()
    reason = _head_problem(last_id, expected_prev, key)
    if reason:
        return _bad(last_id + 1, checked, reason, started)
    return VerifyResult(ok=True, checked=checked, first_bad=None, seconds=time.monotonic() - started)


def _head_problem(last_id: int, last_hash: str, key: bytes) -> str:
    """Why the head does not close the chain at (last_id, last_hash); empty when it does."""
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or head.last_id != last_id or head.last_hash != last_hash:
        return "chain head does not match the last event (events removed from the end?)"
    if not hmac.compare_digest(head.signature, head_signature(head.last_id, head.last_hash, key)):
        return "chain head signature does not verify (head moved back without the key?)"
    return ""


def _row_matches(event_id: int, key: bytes) -> bool:
    """The slow path for one event whose database-built form did not match: column by column."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in (*HASHED_FIELDS, "hash"))
    table = quote(AuditEvent._meta.db_table)
    with connection.cursor() as single:
        single.execute(f"SELECT {columns} FROM {table} WHERE {quote('id')} = %s", [event_id])  # noqa: S608
        row = single.fetchone()
    values, stored = row[:-1], row[-1]
    return event_hash(values, key) == stored or _matches_normalized(values, stored, key)


def _matches_normalized(values, stored: str, key: bytes) -> bool:
    """A database that re-serializes JSON (MySQL 8) changes the text, not the content."""
    values = list(values)
    try:
        values[_DETAIL] = canonical_json(json.loads(values[_DETAIL]))
    except (TypeError, ValueError):
        return False
    return hmac.compare_digest(event_hash(values, key), stored)


def _bad(event_id: int, checked: int, reason: str, started: float) -> VerifyResult:
    return VerifyResult(
        ok=False, checked=checked, first_bad=event_id, reason=reason, seconds=time.monotonic() - started
    )


def file_signature(data: bytes) -> tuple[str, str]:
    """(sha256, HMAC-SHA256 with the chain key) of an archive file's bytes."""
    return hashlib.sha256(data).hexdigest(), hmac.digest(chain_key(), data, "sha256").hex()
