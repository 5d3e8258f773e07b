"""API collections and HTML list pages under load: p50/p95 with 8 concurrent clients against the users/me
baseline, and query counts, at 10, 10,000 and 100,000 rows.

Usage: .venv/bin/python bench/api.py [--rows 10000] [--full 100000] [--requests 200] [--clients 8]

It runs against a database and broker of its own (bench/env.py: `cc_bench_api` on the
MariaDB of DATABASE_URL), served by a real uvicorn (2 workers) on a free loopback port. The rows
come from bench/rows.py (bulk inserts). The baseline is `GET /api/v1/users/me/` (authentication and
the middleware stack, no list), measured again right before each endpoint (the load of a 2-core
machine drifts over the minutes of a run); each endpoint's p95 is printed with the p95 of the baseline
beside it and their ratio.
Targets (issue 18): p95 <= 1.5x the baseline at 10,000 rows and <= 2x at 100,000; the same query
count at 10 rows and at every size (or one fewer: a large set's count comes from the cache,
common/paging.py). `--full 0` skips the full size.
"""

import argparse
import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402


def _timed_requests(port: int, path: str, headers: dict, count: int, clients: int) -> list[float]:
    """`count` GETs spread over `clients` threads, each with a keep-alive connection."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    per_client = max(1, count // clients)

    def run():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for _ in range(per_client):
            start = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 200:
                failures.append(f"{path}: HTTP {response.status}")
                break
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(failures[0])
    return latencies


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def _credentials(world: dict, endpoints) -> dict:
    """Per user: a token header for the API, a session cookie for the pages (second factor verified)."""
    from django.conf import settings
    from django.test import Client

    from audit.testing import force_login_verified
    from bench import rows

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    headers = {}
    for endpoint in endpoints:
        user = endpoint.user(world)
        if (user.pk, endpoint.session) in headers:
            continue
        if endpoint.session:
            client = Client()
            force_login_verified(client, user)
            cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
            headers[(user.pk, True)] = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"}
        else:
            headers[(user.pk, False)] = {"Authorization": f"Token {rows.token_for(user)}"}
    return headers


def _query_counts(world: dict, endpoints, credentials: dict) -> dict[str, int]:
    """Each endpoint's query count at the rows it has now (an in-process request, its credentials)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for endpoint in endpoints:
        headers = credentials[(endpoint.user(world).pk, endpoint.session)]
        client = Client(headers=headers)
        path = endpoint.url(world)
        seen = []
        for _ in range(3):  # the fewest of three: a session refresh or a cold cache adds a query now and then
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.content[:300])
            seen.append(len(ctx.captured_queries))
        counts[endpoint.path] = min(seen)
    return counts


def _grow(world: dict, endpoints, target: int) -> float:
    """Every collection of ``endpoints`` up to ``target`` rows; returns the seconds it took."""
    start = time.perf_counter()
    for endpoint in endpoints:
        endpoint.grow(world, target - world["size"])
    world["size"] = target
    return time.perf_counter() - start


def _latencies(port: int, world: dict, endpoints, credentials: dict, args) -> dict[str, tuple]:
    """{path: (p50, p95, baseline p95)} in seconds, each after a warm-up. The baseline is measured again
    right before each endpoint (half the requests), so that a change of the machine's load over the
    minutes of the run moves both sides of a ratio alike; under ``None``, the first baseline (p50, p95)."""
    base_headers = credentials[(endpoints[0].user(world).pk, False)]
    results = {}

    def baseline(count: int) -> list[float]:
        return _timed_requests(port, "/api/v1/users/me/", base_headers, count, args.clients)

    baseline(args.clients * 2)  # warm-up
    first = baseline(args.requests)
    results[None] = (_percentile(first, 50), _percentile(first, 95))
    for index, endpoint in enumerate(endpoints):
        headers = credentials[(endpoint.user(world).pk, endpoint.session)]
        path = endpoint.url(world)
        base = first if index == 0 else baseline(max(args.clients, args.requests // 2))
        _timed_requests(port, path, headers, args.clients, args.clients)  # warm-up
        latencies = _timed_requests(port, path, headers, args.requests, args.clients)
        results[endpoint.path] = (_percentile(latencies, 50), _percentile(latencies, 95), _percentile(base, 95))
    return results


TARGETS = {"rows": 1.5, "full": 2.0}


def _report(endpoints, sizes: list[tuple[str, int]], latencies: dict, counts: dict, args) -> bool:
    """The table (one block per size), OK/not OK per target; True when every target is met."""
    ok_all = True
    summary: dict = {"clients": args.clients, "requests": args.requests, "sizes": {}}
    for key, size in sizes:
        results = latencies[key]
        base50, base95 = results[None]
        target = TARGETS[key]
        print(f"\n{size} rows per collection: {args.requests} requests per endpoint, {args.clients} clients; "
              f"baseline GET /api/v1/users/me/ p50 {base50 * 1000:.1f} ms, p95 {base95 * 1000:.1f} ms")  # fmt: skip
        print(f"{'endpoint':34} {'p50 ms':>8} {'p95 ms':>8} {'base p95':>9} {'p95/base':>9} {'q@10':>5} "
              f"{'q@' + str(size):>9}  verdict")  # fmt: skip
        rows = {}
        for endpoint in endpoints:
            p50, p95, beside = results[endpoint.path]
            ratio = p95 / beside
            small, large = counts["small"][endpoint.path], counts[key][endpoint.path]
            # One query fewer at size is the page count kept in the cache (common.paging.row_count).
            ok = ratio <= target and large <= small
            ok_all &= ok
            why = [f"p95 {ratio:.2f}x > {target}x"] * (ratio > target) + ["queries grow"] * (large > small)
            verdict = "OK" if ok else "not OK (" + ", ".join(why) + ")"
            print(f"{endpoint.path:34} {p50 * 1000:8.1f} {p95 * 1000:8.1f} {beside * 1000:9.1f} {ratio:9.2f} "
                  f"{small:5} {large:9}  {verdict}")  # fmt: skip
            rows[endpoint.path] = {"p50_ms": round(p50 * 1000, 1), "p95_ms": round(p95 * 1000, 1),
                                   "baseline_p95_ms": round(beside * 1000, 1), "ratio": round(ratio, 2),
                                   "queries": [small, large], "ok": ok}  # fmt: skip
        summary["sizes"][size] = {"baseline_p95_ms": round(base95 * 1000, 1), "endpoints": rows}
    print(f"\ntargets at {size} rows (p95 <= {target}x baseline, equal query counts): "
          f"{'OK' if ok_all else 'not OK'}")  # fmt: skip
    print(json.dumps(summary, ensure_ascii=False))
    return ok_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--full", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--name", default="api", help="the bench database is cc_bench_<name>")
    parser.add_argument(
        "--only", action="append", default=[], metavar="PATH", help="measure only this endpoint (repeatable)"
    )
    args = parser.parse_args()

    url = common.django_on(args.name)
    from bench import rows

    world = {**rows.make_world(), "size": 0}
    endpoints = rows.ENDPOINTS
    _grow(world, endpoints, 10)
    credentials = _credentials(world, endpoints)
    counts = {"small": _query_counts(world, endpoints, credentials)}
    sizes = [("rows", args.rows)] + ([("full", args.full)] if args.full > args.rows else [])
    latencies = {}
    port = common.free_port()
    server = common.uvicorn(port, env={**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    try:
        for key, size in sizes:
            # The full size is the campus's big tables (desktops, audit events) and their pages.
            grown = endpoints if key == "rows" else [e for e in endpoints if e.full]
            seconds = _grow(world, grown, size)
            common.statistics_refresh()
            print(f"seeded {size} rows per collection measured ({seconds:.0f} s)", flush=True)
            measured = [e for e in grown if not args.only or e.path in args.only]
            counts[key] = _query_counts(world, measured, credentials)
            latencies[key] = _latencies(port, world, measured, credentials, args)
            common.print_load()
            _report(measured, [(key, size)], latencies, counts, args)
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
