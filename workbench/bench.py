"""``python -m workbench.bench``: what the whole stack adds, printed as JSON.

It starts everything for real in a scratch directory: an embedded Redis (or ``REDIS_URL``),
SQLite (or ``DATABASE_URL``), the loopback provider upstream in its own process, one daphne
process and one Celery worker process. Then:

- ``token_latency``: each token the upstream sends carries its send time; a websocket client
  records when it arrives. Provider token -> Celery worker -> sink -> Redis -> Channels ->
  browser socket, p50 / p99, over sequential runs with one watcher each.
- ``fanout``: 100 websocket clients watch 10 concurrent runs of 5 members (10 clients per
  run); events per second that the one daphne process delivers, and whether any client saw a
  gap (an event lost) or a text different from the stored one.
- ``gateway``: the single-model passthrough on ``/v1`` (``workbench.bench_gateway``): time
  added to the first token with 1 and 16 clients, streamed requests per second through the
  one daphne process and its peak memory.

- ``load`` (with ``--load``): 200 concurrent runs of 5 members through one worker process
  and one daphne process, every run watched over a websocket: the orchestration overhead
  over each run's critical path (its wall time minus its slowest member and its judge, as
  the worker measured them), token-to-browser latency, events per second, the worker's peak
  memory and database writes per run; then the same burst with two worker processes.

Timings are measured, never asserted: this prints figures for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from workbench.lib.measure import percentile, rss_mb

STAMP = re.compile(r"<(\d+\.\d+)>")
TERMINAL = {"finished", "finished_without_verdict", "failed", "cancelled"}


def _prepare_environment(scratch: Path) -> list[subprocess.Popen[bytes]]:
    """Point settings at scratch storage before Django loads; start Redis when needed."""
    started: list[subprocess.Popen[bytes]] = []
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
    os.environ["FUSION_VAR_DIR"] = str(scratch)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("FUSION_STATIC_MANIFEST", "false")
    # Production timeouts: a saturated machine is slow to first tokens, not broken.
    os.environ.setdefault("FUSION_FIRST_TOKEN_TIMEOUT_S", "60")
    os.environ.setdefault("FUSION_IDLE_TIMEOUT_S", "60")
    if not os.environ.get("DATABASE_URL"):
        os.environ["FUSION_EMBEDDED"] = "true"
    if not os.environ.get("REDIS_URL"):
        from workbench.lib.embedded_redis import start_embedded_redis

        socket = scratch / "redis.sock"
        started.append(start_embedded_redis(socket, log_path=scratch / "redis.log"))
        os.environ["REDIS_URL"] = f"unix://{socket}"
    return started


def _start_upstream(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "fusion.testing.upstream", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the loopback upstream did not start")


def _seed(upstream_url: str) -> tuple[Any, Any, Any]:
    from django.core.management import call_command

    from workbench.accounts.services import user_signup, workspace_create
    from workbench.keys.models import Scope
    from workbench.keys.services import credential_create

    call_command("migrate", verbosity=0)
    user = user_signup(
        username=f"bench{time.monotonic_ns()}", email=f"b{time.monotonic_ns()}@example.com",
        password="bench-pass-phrase-42",
    )  # fmt: skip
    workspace = workspace_create(owner=user, name=f"Bench {time.monotonic_ns()}")
    credential = credential_create(
        workspace=workspace, user=user, provider="openai_compatible", label="loopback",
        scope=Scope.WORKSPACE, base_url=f"{upstream_url}/v1", keys=["sk-bench-not-a-real-key"],
    )  # fmt: skip
    return user, workspace, credential


def _pool(workspace: Any, user: Any, credential: Any, models: list[str]) -> Any:
    from workbench.pools.inputs import MemberInput, PoolInput
    from workbench.pools.services import pool_create

    return pool_create(
        workspace=workspace,
        user=user,
        data=PoolInput(
            name=f"bench {time.monotonic_ns()}",
            members=[
                MemberInput(credential_id=credential.pk, model=m, custom_model=True) for m in models
            ],
        ),
    )


def _start(pool: Any, user: Any) -> str:
    from workbench.pools.services import pool_freeze
    from workbench.runs.services import run_create

    run = run_create(
        workspace=pool.workspace, user=user, config=pool_freeze(pool), prompt="bench", pool=pool
    )
    return str(run.pk)


def _start_many(pool: Any, user: Any, runs: int) -> list[str]:
    """``runs`` runs made in one transaction: each is sent to the workers as it commits, so the
    whole burst arrives at once instead of at the pace of this one client making runs."""
    from django.db import transaction

    with transaction.atomic():
        return [_start(pool, user) for _ in range(runs)]


def _gateway_token(user: Any, workspace: Any) -> str:
    from workbench.tokens.services import token_create

    # A rate limit no benchmark reaches: this measures the gateway, not its limiter.
    return token_create(workspace=workspace, user=user, name="bench", rate_per_minute=10**7)[1]


def _cookie(user: Any) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def _watch(
    url: str, headers: dict[str, str], on_message: Any, seen: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Follow one run to its end; report gaps and the rebuilt texts. ``seen`` keeps the
    last message's type and seq as they come, for a watcher that has to give up."""
    from websockets.asyncio.client import connect

    texts: dict[str, str] = {}
    last, gaps, snapshots, events = 0, 0, 0, 0
    seen = {} if seen is None else seen
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            kind = message["type"]
            events += 1
            seen.update(events=events, last_type=kind, last_seq=message.get("seq"))
            if kind == "run.snapshot":
                seen["snapshot_status"] = message["state"]["run"].get("status")
            if kind == "run.snapshot":
                snapshots += 1
                last = message["seq"]
                texts = {p: d.get("text", "") for p, d in message["state"]["parts"].items()}
                if message["state"]["run"].get("status") in TERMINAL:
                    break
                continue
            if message["seq"] != last + 1:
                gaps += 1
            last = message["seq"]
            if kind == "candidate.delta":
                part = f"{message['candidate']}/{message['round']}"
                texts[part] = texts.get(part, "") + message["text"]
                on_message(message["text"], now)
            elif kind == "candidate.started":
                texts[f"{message['candidate']}/{message['round']}"] = ""
            if kind in {"run.finished", "run.failed", "run.cancelled"}:
                break
    return {"texts": texts, "gaps": gaps, "snapshots": snapshots, "events": events}


async def _watch_bounded(url: str, headers: dict[str, str], on_message: Any) -> dict[str, Any]:
    """A watcher that gives up after two minutes and says so, rather than hang the bench."""
    seen: dict[str, Any] = {}
    try:
        return await asyncio.wait_for(_watch(url, headers, on_message, seen), 120)
    except (TimeoutError, OSError) as exc:
        failure = f"{exc!r} after {seen or 'nothing'} on {url}"
        return {"texts": {}, "gaps": 0, "snapshots": 0, "events": 0, "failed": failure}


def _stored_texts(run_id: str) -> dict[str, str]:
    """The texts as stored once the worker's last write (the run's end) has landed."""
    from workbench.runs.models import Run

    deadline = time.monotonic() + 30
    run = Run.objects.get(pk=run_id)
    while run.finished_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
        run.refresh_from_db()
    return {f"{c.member}/{c.round}": c.text for c in run.candidates.all()}


async def _token_latency(
    base: str, ws_base: str, pool: Any, user: Any, runs: int
) -> dict[str, Any]:
    from asgiref.sync import sync_to_async

    headers = {"Cookie": await sync_to_async(_cookie)(user), "Origin": base}
    latencies: list[float] = []

    def on_text(text: str, received: float) -> None:
        latencies.extend((received - float(s)) * 1000 for s in STAMP.findall(text))

    for _ in range(runs):
        run_id = await sync_to_async(_start)(pool, user)
        await _watch(f"{ws_base}/ws/runs/{run_id}/", headers, on_text)
    return {
        "runs": runs,
        "tokens": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
        "target_p50_ms": 50,
    }


async def _fanout(
    base: str, ws_base: str, pool: Any, user: Any, runs: int, per_run: int
) -> dict[str, Any]:
    from asgiref.sync import sync_to_async

    headers = {"Cookie": await sync_to_async(_cookie)(user), "Origin": base}
    run_ids = [await sync_to_async(_start)(pool, user) for _ in range(runs)]
    started = time.monotonic()
    watchers = [
        _watch(f"{ws_base}/ws/runs/{run_id}/", headers, lambda *_: None)
        for run_id in run_ids
        for _ in range(per_run)
    ]
    results = await asyncio.gather(*watchers)
    elapsed = time.monotonic() - started
    stored = {run_id: await sync_to_async(_stored_texts)(run_id) for run_id in run_ids}
    mismatched = sum(
        1
        for index, result in enumerate(results)
        if result["texts"] != stored[run_ids[index // per_run]]
    )
    delivered = sum(r["events"] for r in results)
    return {
        "clients": len(results),
        "runs": runs,
        "events_delivered": delivered,
        "seconds": round(elapsed, 2),
        "events_per_s": round(delivered / elapsed),
        "gaps": sum(r["gaps"] for r in results),
        "resent_snapshots": sum(r["snapshots"] - 1 for r in results),
        "texts_differing_from_stored": mismatched,
        "target_events_per_s": 2000,
    }


def _failed_count(run_ids: list[str]) -> int:
    from workbench.runs.models import Run

    return Run.objects.filter(pk__in=run_ids).exclude(status__startswith="finished").count()


def _overheads(run_ids: list[str]) -> list[float]:
    """Per run: wall time minus (slowest member call + judge calls), as the worker timed them."""
    from workbench.runs.models import Run

    out = []
    for run in Run.objects.filter(pk__in=run_ids).prefetch_related("calls"):
        members = [c.latency_ms for c in run.calls.all() if not c.candidate.startswith("judge")]
        judge = sum(c.latency_ms for c in run.calls.all() if c.candidate.startswith("judge"))
        if run.wall_ms is not None and members:
            out.append(run.wall_ms - (max(members) + judge))
    return out


async def _load(stack: Any, pool: Any, user: Any, runs: int) -> dict[str, Any]:
    from asgiref.sync import sync_to_async

    headers = {"Cookie": await sync_to_async(_cookie)(user), "Origin": stack.url}
    latencies: list[float] = []

    def on_text(text: str, received: float) -> None:
        latencies.extend((received - float(s)) * 1000 for s in STAMP.findall(text))

    peak = {"rss": 0.0}
    done = asyncio.Event()

    async def sample_memory() -> None:
        while not done.is_set():
            peak["rss"] = max(peak["rss"], *(rss_mb(w.process.pid) for w in stack.workers()))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample_memory())
    creating = time.monotonic()
    run_ids = await sync_to_async(_start_many)(pool, user, runs)
    created = time.monotonic() - creating
    # The clock starts as the burst reaches the workers (all of it at once, at the commit);
    # every run is watched from then on, as people who just pressed Run would watch them.
    started = time.monotonic()
    results = await asyncio.gather(
        *(_watch_bounded(f"{stack.ws_url}/ws/runs/{r}/", headers, on_text) for r in run_ids)
    )
    elapsed = time.monotonic() - started
    done.set()
    await sampler
    for run_id in run_ids:  # the last database writes land just after the last event
        await sync_to_async(_stored_texts)(run_id)
    overheads = await sync_to_async(_overheads)(run_ids)
    delivered = sum(r["events"] for r in results)
    writes = [int(n) for n in re.findall(r": (\d+) database writes", stack.worker_logs())]
    return {
        "runs": runs,
        "members_per_run": 5,
        "workers": len(stack.workers()),
        "seconds_to_create_runs": round(created, 2),
        "seconds_until_all_finished": round(elapsed, 2),
        "runs_per_s": round(runs / elapsed, 2),
        "overhead_ms": {
            "p50": round(percentile(overheads, 0.5), 1),
            "p99": round(percentile(overheads, 0.99), 1),
        },
        "token_to_browser_ms": {
            "p50": round(percentile(latencies, 0.5), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "tokens": len(latencies),
        },
        "events_delivered": delivered,
        "events_per_s": round(delivered / elapsed),
        "gaps": sum(r["gaps"] for r in results),
        "watchers_failed": sum(1 for r in results if "failed" in r),
        "watcher_failures": [r["failed"] for r in results if "failed" in r][:3],
        "runs_failed": await sync_to_async(_failed_count)(run_ids),
        "worker_peak_rss_mb": round(peak["rss"], 1),
        "database_writes_per_run": round(statistics.fmean(writes[-runs:]), 1) if writes else None,
    }


def _scaling(stack: Any, pool: Any, user: Any, runs: int, per_worker: int) -> dict[str, Any]:
    """The burst on workers that each take ``per_worker`` runs at a time (their Celery
    threads), first one such worker, then two: how throughput grows with workers while the
    machine has cores to spare."""
    from workbench.lib.stack import start_worker

    for worker in stack.workers():
        worker.stop()
    stack.extra_workers.clear()
    threads = str(per_worker)
    stack.worker = start_worker(stack.log_dir, "scale1", WORKER_THREADS=threads)
    print(f"scaling: {runs} runs, {per_worker} at a time, one worker…", file=sys.stderr)
    one = asyncio.run(_load(stack, pool, user, runs))
    stack.start_worker("scale2", WORKER_THREADS=threads)
    print("scaling: two workers…", file=sys.stderr)
    two = asyncio.run(_load(stack, pool, user, runs))
    return {
        "runs_at_a_time_per_worker": per_worker,
        "one_worker": one,
        "two_workers": two,
        "throughput_ratio": round(two["runs_per_s"] / one["runs_per_s"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="sequential runs for latency")
    parser.add_argument("--fanout-runs", type=int, default=10)
    parser.add_argument("--clients-per-run", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few runs, few tokens")
    parser.add_argument("--load", action="store_true", help="add the 200-run load and scaling")
    parser.add_argument("--load-runs", type=int, default=200)
    parser.add_argument(
        "--scaling", type=int, metavar="N", default=0,
        help="with --load: the burst again with N runs at a time per worker, on 1 then 2 workers",
    )  # fmt: skip
    parser.add_argument(
        "--only",
        choices=["stack", "gateway", "load"],
        help="one part: the run figures, the gateway's, or the load (--load implied)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.fanout_runs, args.clients_per_run = 2, 2, 3

    scratch = Path(tempfile.mkdtemp(prefix="fusion-bench-"))
    started = _prepare_environment(scratch)
    import django

    django.setup()
    from workbench.bench_gateway import gateway_report
    from workbench.lib.stack import free_port, start_stack

    upstream_port = free_port()
    started.append(_start_upstream(upstream_port))
    stack = None
    try:
        user, workspace, credential = _seed(f"http://127.0.0.1:{upstream_port}")
        # Enough Celery threads that every run of the load burst is in flight at once.
        stack = start_stack(scratch, worker_threads=max(8, args.load_runs + 10))
        tokens = 10 if args.quick else 50
        latency_pool = _pool(
            workspace, user, credential, [f"lat@stamp=1,ttft=0.05,delay=0.02,tokens={tokens}"]
        )
        fanout_pool = _pool(
            workspace, user, credential,
            [f"fan{i}@ttft=0.05,delay=0.01,tokens={tokens * 4}" for i in range(5)],
        )  # fmt: skip
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
        }
        if args.only in (None, "stack"):
            print("measuring token latency and fan-out…", file=sys.stderr)
            report["token_latency"] = asyncio.run(
                _token_latency(stack.url, stack.ws_url, latency_pool, user, args.runs)
            )
            report["fanout"] = asyncio.run(
                _fanout(
                    stack.url, stack.ws_url, fanout_pool, user,
                    args.fanout_runs, args.clients_per_run,
                )
            )  # fmt: skip
        if args.only in (None, "gateway"):
            print("measuring the gateway's single-model passthrough…", file=sys.stderr)
            report["gateway"] = asyncio.run(
                gateway_report(
                    base_url=stack.url, upstream_url=f"http://127.0.0.1:{upstream_port}",
                    credential_label=credential.label, token=_gateway_token(user, workspace),
                    daphne_pid=stack.daphne.pid, quick=args.quick,
                )
            )  # fmt: skip
        if args.load or args.only == "load":
            load_pool = _pool(
                workspace, user, credential,
                [f"ld{i}@stamp=1,ttft=0.2,delay=0.05,tokens=20" for i in range(5)],
            )  # fmt: skip
            print(f"load: {args.load_runs} runs, one worker…", file=sys.stderr)
            report["load_one_worker"] = asyncio.run(_load(stack, load_pool, user, args.load_runs))
            stack.start_worker("second", WORKER_THREADS=str(args.load_runs + 10))
            print(f"load: {args.load_runs} runs, two workers…", file=sys.stderr)
            report["load_two_workers"] = asyncio.run(_load(stack, load_pool, user, args.load_runs))
            if args.scaling:
                report["scaling"] = _scaling(stack, load_pool, user, args.load_runs, args.scaling)
        print(json.dumps(report, indent=2))
        return 0
    finally:
        if stack is not None:
            stack.stop()
        for process in started:
            process.kill()


if __name__ == "__main__":
    sys.exit(main())
