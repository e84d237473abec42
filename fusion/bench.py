"""Measure the engine's own overhead against the loopback upstream: ``python -m fusion.bench``.

Prints JSON. Members and the judge answer from a loopback upstream (OpenAI protocol, in a
subprocess so its CPU does not count as ours) with fixed, scripted latencies; one shared
pooled client (``make_client``: aiohttp) serves every provider. Figures are measured against
direct calls in the same process and run, so the upstream's own speed cancels out:

- ``single``: fusion wall time - (slowest member + judge), 5 members, one run at a time, where
  "slowest member + judge" is measured by making the same calls directly (the members at once,
  then the judge) with the same client: what an orchestrator without overhead would take;
- ``concurrent``: the same with 40 runs x 5 members (200 streams) at once, against waves of
  40 direct fan-outs (the same load), with this process's CPU per run for both;
- ``quorum``: quorum n-1 with one member 10x slower: wall time / (second slowest + judge).

Targets (DESIGN.md): single p50 <= 5 ms, p99 <= 25 ms; concurrent p50 <= 25 ms; quorum
ratio <= 1.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import re
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from fusion.engine import run_fusion
from fusion.events import Event
from fusion.providers.base import Endpoint, Timeouts
from fusion.providers.http import make_client
from fusion.providers.openai import OpenAIProvider
from fusion.types import ChatRequest, JudgeSpec, Member, Message, RunSpec

PROVIDER = "bench"
JUDGE_MODEL = "bench-judge"
# A verdict that is valid whatever the candidates: the judge always prefers answer A.
VERDICT = json.dumps(
    {"scores": {"A": 9, "B": 7}, "winner": "A", "confidence": 0.8, "rationale": "benchmark"}
)
TARGETS = {
    "single_overhead_p50_ms": 5.0,
    "single_overhead_p99_ms": 25.0,
    "concurrent_overhead_p50_ms": 25.0,
    "quorum_ratio_p50": 1.1,
}


@dataclass(frozen=True)
class Config:
    runs: int = 50  # sequential runs for ``single``
    waves: int = 8  # rounds of ``concurrency`` simultaneous runs for ``concurrent``
    concurrency: int = 40
    quorum_runs: int = 20
    members: int = 5
    member_ttft_s: float = 0.1  # the fastest member; each next one is 5 ms slower
    tokens: int = 20
    token_delay_s: float = 0.01  # 100 tokens/s, faster than most real models
    judge_ttft_s: float = 0.1
    # The 200-stream case paces its streams like real models (a 200 ms first token, then
    # 20 tokens/s in chunks): at 100 tokens/s, 200 streams alone would saturate the process.
    concurrent_ttft_s: float = 0.2
    concurrent_tokens: int = 10
    concurrent_token_delay_s: float = 0.05
    upstream: str = "process"  # or "thread"
    freeze_heap: bool = True  # gc.freeze() the started process's heap (see bench())
    sections: tuple[str, ...] = ("single", "concurrent", "quorum")

    @classmethod
    def quick(cls) -> Config:
        return cls(
            runs=5,
            waves=1,
            concurrency=8,
            quorum_runs=3,
            member_ttft_s=0.01,
            judge_ttft_s=0.01,
            tokens=5,
            token_delay_s=0.001,
            concurrent_ttft_s=0.01,
            concurrent_tokens=5,
            concurrent_token_delay_s=0.001,
        )


def member_model(index: int, cfg: Config, slow: float = 1.0) -> str:
    ttft = (cfg.member_ttft_s + 0.005 * index) * slow
    return f"b{index}@ttft={ttft:.4f},delay={cfg.token_delay_s},tokens={cfg.tokens}"


def paced_model(index: int, cfg: Config) -> str:
    ttft = cfg.concurrent_ttft_s + 0.005 * index
    delay, tokens = cfg.concurrent_token_delay_s, cfg.concurrent_tokens
    return f"c{index}@ttft={ttft:.4f},delay={delay},tokens={tokens}"


def make_spec(models: Sequence[str], quorum: int | None = None) -> RunSpec:
    return RunSpec(
        mode="best_of",
        prompt="Benchmark question: what is the answer?",
        members=tuple(Member(f"m{i + 1}", PROVIDER, m) for i, m in enumerate(models)),
        judge=JudgeSpec(PROVIDER, JUDGE_MODEL, max_tokens=200),
        quorum=quorum,
    )


def percentiles(values: Sequence[float]) -> dict[str, float]:
    data = sorted(values)

    def rank(p: float) -> float:
        return data[max(0, math.ceil(p / 100 * len(data)) - 1)]

    return {
        "p50": round(statistics.median(data), 3),
        "p99": round(rank(99), 3),
        "max": round(data[-1], 3),
        "min": round(data[0], 3),
        "n": len(data),
    }


async def _nothing(event: Event) -> None:
    """A sink that costs nothing, so the figures are the engine's."""


class Bench:
    def __init__(self, cfg: Config, provider: OpenAIProvider) -> None:
        self.cfg = cfg
        self.provider = provider
        self.endpoints = {PROVIDER: Endpoint(provider)}
        self.counter = 0

    async def fusion(self, spec: RunSpec) -> float:
        self.counter += 1
        start = time.perf_counter()
        result = await run_fusion(spec, self.endpoints, _nothing, run_id=f"b{self.counter}")
        elapsed = (time.perf_counter() - start) * 1000
        if result.status != "finished":
            raise RuntimeError(f"benchmark run ended {result.status}: {result.error}")
        return elapsed

    async def direct(self, model: str, prompt: str = "Benchmark question") -> float:
        """One call straight to the provider, streamed to its end, in ms."""
        start = time.perf_counter()
        request = ChatRequest(model, (Message("user", prompt),), max_tokens=200)
        async for _ in self.provider.stream(request, None):
            pass
        return (time.perf_counter() - start) * 1000

    async def direct_fusion(self, models: Sequence[str]) -> float:
        """What an orchestrator with no overhead would take: the same calls, no engine."""
        start = time.perf_counter()
        await asyncio.gather(*(self.direct(m) for m in models))
        await self.direct(JUDGE_MODEL)
        return (time.perf_counter() - start) * 1000

    async def single(self) -> dict[str, Any]:
        cfg = self.cfg
        models = [member_model(i, cfg) for i in range(cfg.members)]
        spec = make_spec(models)
        for _ in range(3):  # warm the connection pool and the code paths
            await self.fusion(spec)
            await self.direct_fusion(models)
        walls, paths = [], []
        cpu = 0.0
        for _ in range(cfg.runs):
            before = time.process_time()
            walls.append(await self.fusion(spec))
            cpu += time.process_time() - before
            paths.append(await self.direct_fusion(models))
        base = statistics.median(paths)
        return {
            "members": cfg.members,
            "fusion_ms": percentiles(walls),
            "direct_ms": percentiles(paths),
            "overhead_ms": percentiles([w - base for w in walls]),
            "overhead_paired_ms": percentiles([w - p for w, p in zip(walls, paths, strict=True)]),
            "cpu_ms_per_fusion": round(cpu * 1000 / cfg.runs, 3),
        }

    async def concurrent(self) -> dict[str, Any]:
        cfg = self.cfg
        models = [paced_model(i, cfg) for i in range(cfg.members)]
        spec = make_spec(models)
        n = cfg.concurrency
        await asyncio.gather(*(self.fusion(spec) for _ in range(n)))  # warm up the pool
        overheads: list[float] = []
        directs: list[float] = []
        cpu_fusion = cpu_direct = 0.0
        for _ in range(cfg.waves):
            # Alternate waves of fusion runs and of the same calls made directly, so that
            # both meet the same load.
            before = time.process_time()
            walls = await asyncio.gather(*(self.fusion(spec) for _ in range(n)))
            middle = time.process_time()
            paths = await asyncio.gather(*(self.direct_fusion(models) for _ in range(n)))
            cpu_fusion += middle - before
            cpu_direct += time.process_time() - middle
            base = statistics.median(paths)
            directs += paths
            overheads += [w - base for w in walls]
        runs = cfg.waves * n
        return {
            "runs_at_once": n,
            "streams": n * cfg.members,
            "direct_ms": percentiles(directs),
            "overhead_ms": percentiles(overheads),
            # CPU of this process per run: what decides how many streams one loop can carry.
            "cpu_ms_per_fusion": round(cpu_fusion * 1000 / runs, 3),
            "cpu_ms_per_direct": round(cpu_direct * 1000 / runs, 3),
        }

    async def quorum(self) -> dict[str, Any]:
        cfg = self.cfg
        models = [member_model(i, cfg) for i in range(cfg.members - 1)]
        straggler = member_model(cfg.members - 2, cfg, slow=10.0)
        spec = make_spec([*models, straggler], quorum=cfg.members - 1)
        await self.fusion(spec)
        ratios, walls = [], []
        for _ in range(cfg.quorum_runs):
            wall = await self.fusion(spec)
            # The second slowest and the judge, as direct calls under the same fan-out.
            path = await self.direct_fusion(models)
            walls.append(wall)
            ratios.append(wall / path)
        return {"fusion_ms": percentiles(walls), "ratio": percentiles(ratios)}


@contextlib.asynccontextmanager
async def upstream_url(mode: str) -> AsyncIterator[str]:
    """The loopback upstream, in a subprocess (default) or a thread of this process."""
    if mode == "thread":
        from fusion.testing.upstream import Upstream

        up = Upstream(record=False)
        url = up.start_in_thread()
        try:
            yield url
        finally:
            up.stop_thread()
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "fusion.testing.upstream", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        m = re.search(r"(http://\S+)", line)
        if m is None:
            raise RuntimeError(f"the upstream did not start: {line!r}")
        yield m.group(1)
    finally:
        proc.terminate()
        proc.wait(5)


async def script_judge(url: str, cfg: Config) -> None:
    script = {
        "text": VERDICT,
        "ttft_s": cfg.judge_ttft_s,
        "token_chars": 12,
        "delay_s": cfg.token_delay_s,
    }
    async with httpx.AsyncClient(trust_env=False) as control:
        response = await control.post(
            f"{url}/_upstream/script", json={"model": JUDGE_MODEL, "scripts": [script]}
        )
        response.raise_for_status()


async def bench(cfg: Config) -> dict[str, Any]:
    async with upstream_url(cfg.upstream) as url, make_client(trust_env=False) as client:
        await script_judge(url, cfg)
        provider = OpenAIProvider(
            name=PROVIDER,
            base_url=f"{url}/v1",
            client=client,
            timeouts=Timeouts(connect=5, first_token=30, idle=30, total=60),
        )
        b = Bench(cfg, provider)
        if cfg.freeze_heap:
            # What a long-running worker should do once started: keep the import-time heap
            # (~50k objects) out of the collector. Otherwise one full collection of it (about
            # 50 ms on this machine) lands in some random run and becomes the p99, a cost of
            # the process's size, not of orchestration. Objects the runs make are collected
            # as usual.
            gc.collect()
            gc.freeze()
        report: dict[str, Any] = {"config": asdict(cfg)}
        figures: dict[str, float] = {}
        if "single" in cfg.sections:
            report["single"] = single = await b.single()
            figures["single_overhead_p50_ms"] = single["overhead_ms"]["p50"]
            figures["single_overhead_p99_ms"] = single["overhead_ms"]["p99"]
        if "concurrent" in cfg.sections:
            report["concurrent"] = concurrent = await b.concurrent()
            figures["concurrent_overhead_p50_ms"] = concurrent["overhead_ms"]["p50"]
        if "quorum" in cfg.sections:
            report["quorum"] = quorum = await b.quorum()
            figures["quorum_ratio_p50"] = quorum["ratio"]["p50"]
    report["targets"] = TARGETS
    report["met"] = {k: v <= TARGETS[k] for k, v in figures.items()}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few runs: a smoke test")
    parser.add_argument("--runs", type=int, help="sequential runs (default 50)")
    parser.add_argument("--waves", type=int, help="waves of concurrent runs (default 8)")
    parser.add_argument("--concurrency", type=int, help="runs at once (default 40)")
    parser.add_argument("--quorum-runs", type=int, help="quorum runs (default 20)")
    parser.add_argument("--upstream", choices=["process", "thread"], help="where it runs")
    parser.add_argument(
        "--only", choices=["single", "concurrent", "quorum"], action="append", help="repeatable"
    )
    parser.add_argument(
        "--no-freeze", action="store_true", help="leave the start-up heap to the collector"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    cfg = Config.quick() if args.quick else Config()
    overrides = {
        "runs": args.runs,
        "waves": args.waves,
        "concurrency": args.concurrency,
        "quorum_runs": args.quorum_runs,
        "upstream": args.upstream,
        "sections": tuple(args.only) if args.only else None,
        "freeze_heap": False if args.no_freeze else None,
    }
    cfg = Config(**{**asdict(cfg), **{k: v for k, v in overrides.items() if v is not None}})
    report = asyncio.run(bench(cfg))
    print(json.dumps(report, indent=2))
    return 1 if args.check and not all(report["met"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
