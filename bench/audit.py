"""Audit log at scale: bulk chain writes, verifying 1,000,000 events, and the per-write overhead.

Usage: .venv/bin/python bench/audit.py [--events 1000000]

Runs on a database of its own (bench/env.py: `cc_bench_audit` on the MariaDB of DATABASE_URL,
default mysql://root@127.0.0.1:3306/).
Prints the insert rate, the time `verify_audit_chain` takes over every event, and the
overhead of auditing a state change (a desktop-start-like row update in a transaction,
with and without its audit event), measured in the same run.
Targets (issue 8): verify 1,000,000 events <= 15 s from MariaDB; <= 5 ms per audited write.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402


def _bulk_insert(events: int, batch_size: int) -> int:
    """Write ``events`` events in chain order, ``batch_size`` at a time; print the rate."""
    from django.utils import timezone

    from audit import chain
    from audit.actions import Action
    from audit.models import AuditEvent

    now = timezone.now()
    started = time.perf_counter()
    written = 0
    while written < events:
        n = min(batch_size, events - written)
        batch = [
            AuditEvent(
                occurred_at=now,
                actor_id=7,
                actor_username="student7",
                actor_role="student",
                tenant_slug="cs",
                source_ip="10.20.3.4",
                user_agent="Mozilla/5.0 bench",
                request_id=f"bench-{written + i}",
                action=Action.DESKTOP_STARTED,
                object_type="compute.desktop",
                object_id=str(written + i),
                object_name=f"CS101-student{(written + i) % 60}",
                detail={"course": "CS101", "n": written + i},
            )  # fmt: skip
            for i in range(n)
        ]
        chain.append_many(batch, batch_size=5000)
        written += n
    insert_seconds = time.perf_counter() - started
    print(f"insert: {written:,} events in {insert_seconds:.1f} s = {written / insert_seconds:,.0f} events/s")
    return written


def _write_overhead(writes: int) -> None:
    """The same state change with and without its audit event: the median of each, and the difference."""
    from django.db import transaction

    from audit.actions import Action
    from audit.services import event_record
    from tenants.models import Tenant

    tenant = Tenant.objects.create(slug="bench", name_zh="基准", path="/bench/")

    def change(audited: bool) -> float:
        start = time.perf_counter()
        with transaction.atomic():
            Tenant.objects.filter(pk=tenant.pk).update(name_en=f"run {time.perf_counter()}")
            if audited:
                event_record(action=Action.DESKTOP_STARTED, target=tenant, tenant=tenant, detail={"bench": True})
        return time.perf_counter() - start

    for _warm in range(20):
        change(True), change(False)
    plain = [change(False) for _ in range(writes)]
    audited = [change(True) for _ in range(writes)]
    base, with_audit = statistics.median(plain) * 1000, statistics.median(audited) * 1000
    overhead = with_audit - base
    target = "OK" if overhead <= 5 else "OVER TARGET"
    print(
        f"write: {base:.2f} ms without audit, {with_audit:.2f} ms with (median of {writes}); "
        f"overhead {overhead:.2f} ms per audited write (target <= 5 ms: {target}); ratio {with_audit / base:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()

    os.environ.setdefault("LOG_LEVEL", "WARNING")
    common.django_on("audit")
    from django.db import connection

    from audit import chain

    common.print_load()
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")

    # 1. Bulk writes in chain order.
    written = _bulk_insert(args.events, args.batch)
    # 2. Verify the whole chain (what `verify_audit_chain` runs).
    result = chain.verify()
    assert result.ok and result.checked == written, result
    target = "OK" if result.seconds <= 15 else "OVER TARGET"
    print(f"verify: {result.checked:,} events in {result.seconds:.2f} s (target <= 15 s: {target})")
    # 3. Overhead of auditing a write.
    _write_overhead(args.writes)


if __name__ == "__main__":
    main()
