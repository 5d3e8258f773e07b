"""The list and class-start benches run to the end in a tiny configuration, so they never rot.

Each runs as `make bench` runs it (a subprocess, its own cc_bench_* database, the portal under a
real uvicorn), only with a handful of rows and students: the numbers are not judged here (two
cores shared with the suite), but every endpoint answers 200, every student finishes the three
steps, and the query count of each list is the same at 10 rows and at the larger size.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.harness.processes import ROOT

pytestmark = [pytest.mark.worker]


def _bench(*args: str) -> tuple[str, list[dict]]:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "LOG_LEVEL": "ERROR"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout, [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_the_list_bench_covers_every_collection_and_page_with_flat_query_counts():
    from bench.rows import ENDPOINTS

    out, summaries = _bench("bench/api.py", "--name", "api_tiny", "--rows", "30", "--full", "60", "--requests", "4",
                            "--clients", "2")  # fmt: skip
    assert "targets at 30 rows (p95 <= 1.5x baseline, equal query counts)" in out
    assert "targets at 60 rows (p95 <= 2.0x baseline, equal query counts)" in out
    sizes = {size: v for summary in summaries for size, v in summary["sizes"].items()}
    expected = {"30": ENDPOINTS, "60": [endpoint for endpoint in ENDPOINTS if endpoint.full]}
    for size, endpoints in expected.items():
        measured = sizes[size]["endpoints"]
        assert set(measured) == {endpoint.path for endpoint in endpoints}
        grown = {path: v["queries"] for path, v in measured.items() if v["queries"][1] > v["queries"][0]}
        assert not grown, f"query counts grow with the rows at {size}: {grown}"
        assert all(v["p95_ms"] > 0 for v in measured.values())
        # Each ratio is to the baseline measured right before its endpoint.
        for v in measured.values():
            assert v["baseline_p95_ms"] > 0
            assert v["ratio"] == pytest.approx(v["p95_ms"] / v["baseline_p95_ms"], rel=0.02)


def test_the_class_start_bench_takes_every_student_through_the_three_steps():
    out, (summary,) = _bench("bench/classstart.py", "--pools", "2", "--seats", "3", "--seconds", "2")
    assert "class start target:" in out
    assert summary["students"] == 6 and summary["errors"] == 0
    assert set(summary["steps"]) == {"login", "desktop list", "console ticket"}
