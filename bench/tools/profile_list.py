"""Where a list endpoint's time goes: pyinstrument over N in-process GETs at a given size.

A tool, not a bench: `make bench` runs bench/*.py only.

Usage: .venv/bin/python bench/tools/profile_list.py [--rows 10000] [--path /api/v1/desktops/] [--repeat 20]

Own database (``cc_bench_profile``) and broker prefix (bench/env.py); rows from bench/rows.py.
Prints the mean time per request and pyinstrument's call tree (CPU and waits alike).
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--path", default="/api/v1/desktops/")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    common.django_on("profile")
    from django.conf import settings
    from django.test import Client
    from pyinstrument import Profiler

    from audit.testing import force_login_verified
    from bench import rows

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    world = rows.make_world()
    endpoint = next(e for e in rows.ENDPOINTS if e.path == args.path)
    # As bench/api.py grows them: a page or sub-collection is measured on the rows the collections
    # listed before it grew (the pool page needs the pools, the usage page the usage).
    for grown in rows.ENDPOINTS[: rows.ENDPOINTS.index(endpoint) + 1]:
        grown.grow(world, args.rows)
    common.statistics_refresh()
    path = endpoint.url(world)  # "/api/v1/pools/{pool}/seats/" and the like get their ids
    client = Client()
    force_login_verified(client, endpoint.user(world))
    assert client.get(path).status_code == 200  # warm-up
    profiler = Profiler(interval=0.0005)
    start = time.perf_counter()
    with profiler:
        for _ in range(args.repeat):
            client.get(path)
    elapsed = (time.perf_counter() - start) / args.repeat
    print(f"{args.path} at {args.rows} rows: {elapsed * 1000:.1f} ms per request (in-process, one at a time)")
    print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
