"""The benchmarks still run and print the figures the README quotes.

Each runs in quick mode as a user would start it, in a subprocess with the embedded defaults
(its own scratch SQLite and Redis, never the test database). Figures are never asserted, only
that each was measured, and that nothing the benchmark checks on the way (gaps, failed
requests) went wrong.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

BASE_DIR = Path(__file__).resolve().parents[1]
# What points a process at the test's own services; a benchmark starts its own.
_TEST_SERVICES = ("DATABASE_URL", "REDIS_URL", "FUSION_VAR_DIR", "FUSION_TEST_EMBEDDED_REDIS")


def run_benchmark(module: str, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in _TEST_SERVICES}
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(done.stdout))


def measured(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def test_the_engine_benchmark_prints_every_figure() -> None:
    report = run_benchmark("fusion.bench", "--quick")

    assert measured(report["single"]["overhead_ms"]["p50"])
    assert measured(report["concurrent"]["overhead_ms"]["p50"])
    assert measured(report["quorum"]["ratio"]["p50"])
    assert set(report["met"]) == set(report["targets"])


def test_the_workbench_benchmark_prints_every_figure() -> None:
    report = run_benchmark("workbench.bench", "--quick")

    assert report["token_latency"]["tokens"] > 0 and measured(report["token_latency"]["p50_ms"])
    assert report["fanout"]["gaps"] == 0 and report["fanout"]["texts_differing_from_stored"] == 0
    gateway = report["gateway"]
    assert measured(gateway["ttft_one_client"]["added_ms"]["p50"])
    assert measured(gateway["ttft_16_clients"]["added_ms"]["p50"])
    assert gateway["throughput"]["gateway"]["failed"] == 0
    assert gateway["throughput"]["gateway"]["requests_per_s"] > 0
    assert gateway["daphne_peak_rss_mb"] > 0
