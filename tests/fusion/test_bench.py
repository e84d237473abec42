from __future__ import annotations

import asyncio
from dataclasses import replace

from fusion.bench import Config, bench


def test_it_reports_overhead_concurrency_and_quorum_figures() -> None:
    cfg = replace(
        Config.quick(), runs=2, concurrency=4, quorum_runs=2, upstream="thread", freeze_heap=False
    )
    report = asyncio.run(bench(cfg))
    assert {"config", "single", "concurrent", "quorum", "targets", "met"} <= set(report)
    for key in ("p50", "p99", "max", "n"):
        assert key in report["single"]["overhead_ms"]
        assert key in report["concurrent"]["overhead_ms"]
        assert key in report["quorum"]["ratio"]
    assert report["single"]["overhead_ms"]["n"] == 2
    assert report["concurrent"]["streams"] == 4 * cfg.members
    assert report["concurrent"]["cpu_ms_per_fusion"] > 0 < report["concurrent"]["cpu_ms_per_direct"]
    assert set(report["met"]) == set(report["targets"])
