"""API list endpoints under load: p50/p95 latency with 8 concurrent clients, query counts at 10 and 10,000 rows.

Usage: .venv/bin/python bench/api.py [--rows 10000] [--requests 200] [--clients 8]

It runs against a database and broker of its own (bench/env.py: `cc_bench_api` on the
MariaDB of DATABASE_URL), served by a real uvicorn on a free loopback
port. The baseline, measured in the same run, is `GET /api/v1/users/me/` (authentication
and the middleware stack, no list); each endpoint's p95 is printed with its ratio to it.
Targets (issue 2): p95 <= 100 ms; the same query count for 10 and 10,000 rows.
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


def _timed_requests(port: int, path: str, token: str, count: int, clients: int) -> list[float]:
    """`count` GETs spread over `clients` threads, each with a keep-alive connection."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = max(1, count // clients)

    def run():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per_client):
            start = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Token {token}"})
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 200:
                raise SystemExit(f"{path}: HTTP {response.status}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def _query_counts(world: dict, endpoints, rows: int) -> dict[str, list[int]]:
    """Each endpoint's query count with 10 rows, then with ``rows``."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from audit.testing import force_login_verified

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]

    def queries(path: str, user) -> int:
        client = Client()
        force_login_verified(client, user)  # auditors and finance need a verified second factor
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
        return len(ctx.captured_queries)

    counts = {}
    for endpoint in endpoints:
        endpoint.grow(world, 10)
        counts[endpoint.path] = [queries(endpoint.path, endpoint.user(world))]
    for endpoint in endpoints:
        endpoint.grow(world, rows - 10)
        counts[endpoint.path].append(queries(endpoint.path, endpoint.user(world)))
    return counts


def _latencies(port: int, world: dict, endpoints, args) -> list[tuple]:
    """(label, latencies, path) of the baseline, then of each endpoint after a warm-up."""
    from bench import rows

    base_user = endpoints[0].user(world) if endpoints else world["admin"]
    baseline = _timed_requests(port, "/api/v1/users/me/", rows.token_for(base_user), args.requests, args.clients)
    results = [("GET /api/v1/users/me/ (baseline)", baseline, None)]
    for endpoint in endpoints:
        token = rows.token_for(endpoint.user(world))
        _timed_requests(port, endpoint.path, token, args.clients, args.clients)  # warm-up
        latencies = _timed_requests(port, endpoint.path, token, args.requests, args.clients)
        results.append((f"GET {endpoint.path}", latencies, endpoint.path))
    return results


def _report(results: list[tuple], counts: dict, args) -> None:
    print(f"API list endpoints: {args.rows} rows each, {args.requests} requests, {args.clients} concurrent clients")
    print(f"{'endpoint':55} {'p50 ms':>8} {'p95 ms':>8} {'p95/base':>9} {'q@10':>5} {'q@' + str(args.rows):>8}")
    base_p95 = _percentile(results[0][1], 95)
    summary = {}
    for label, latencies, path in results:
        p50, p95 = _percentile(latencies, 50) * 1000, _percentile(latencies, 95) * 1000
        q_small, q_large = counts.get(path, ["-", "-"])
        ratio = f"{p95 / (base_p95 * 1000):.2f}" if path else "1.00"
        print(f"{label:55} {p50:8.1f} {p95:8.1f} {ratio:>9} {q_small!s:>5} {q_large!s:>8}")
        summary[label] = {"p50_ms": round(p50, 1), "p95_ms": round(p95, 1), "queries": [q_small, q_large]}
    flat = all(q[0] == q[1] for q in counts.values())
    slow = [label for label, v in summary.items() if v["p95_ms"] > 100]
    print(f"query counts constant: {'yes' if flat else 'NO'}; p95 over 100 ms: {', '.join(slow) or 'none'}")
    print(json.dumps({"rows": args.rows, "results": summary}, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    url = common.django_on("api")
    from bench import rows

    world = rows.make_world()
    counts = _query_counts(world, rows.ENDPOINTS, args.rows)
    port = common.free_port()
    server = common.uvicorn(port, env={**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    try:
        results = _latencies(port, world, rows.ENDPOINTS, args)
    finally:
        server.terminate()
        server.wait(timeout=20)
    _report(results, counts, args)


if __name__ == "__main__":
    main()
