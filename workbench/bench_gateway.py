"""The gateway's single-model passthrough, measured for ``python -m workbench.bench``.

``<credential>/<model>`` on ``/v1/chat/completions`` is one provider call made by the daphne
process serving the request, streamed straight through and recorded as a one-member run. What
it adds is measured as DESIGN.md asks, against the upstream in the same run: each request is
made once straight to the loopback upstream and once through the gateway, in turn, and the
time to the first content token compared (upstream first token after 200 ms):

- ``ttft_one_client``: one client, requests one after another;
- ``ttft_16_clients``: sixteen at once, then sixteen at once straight to the upstream, in turn;
- ``throughput``: 32 clients streaming short answers back to back through the one daphne
  process for a few seconds: completed streamed requests per second (and the upstream alone,
  for scale: client, upstream and daphne share the machine's cores);
- the daphne process's peak resident memory across all of it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from workbench.lib.measure import percentile, rss_mb

FIRST_TOKEN_S = 0.2
ROUNDS_16 = 8
THROUGHPUT_CLIENTS = 32


class Target:
    """Where a chat completion goes: straight to the upstream or through the gateway."""

    def __init__(self, url: str, model: str, token: str) -> None:
        self.url = url
        self.model = model
        self.headers = {"Authorization": f"Bearer {token}"}

    async def stream(self, session: aiohttp.ClientSession, spec: str) -> float:
        """One streamed request read to its end; seconds to its first content token."""
        body = {
            "model": self.model + spec,
            "stream": True,
            "messages": [{"role": "user", "content": "bench"}],
        }
        started = time.perf_counter()
        first: float | None = None
        done = False
        async with session.post(self.url, json=body, headers=self.headers) as response:
            if response.status != 200:
                raise RuntimeError(f"{self.url}: HTTP {response.status}: {await response.text()}")
            async for line in response.content:
                if line.startswith(b"data: [DONE]"):
                    done = True
                elif first is None and line.startswith(b"data: {"):
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    if choices[0].get("delta", {}).get("content"):
                        first = time.perf_counter() - started
        if first is None or not done:
            raise RuntimeError(f"{self.url}: the stream ended without content or [DONE]")
        return first


def _added(direct: list[float], gateway: list[float]) -> dict[str, Any]:
    ms = 1000
    return {
        "requests": len(gateway),
        "upstream_ttft_ms": {
            "p50": round(percentile(direct, 0.5) * ms, 1),
            "p99": round(percentile(direct, 0.99) * ms, 1),
        },
        "gateway_ttft_ms": {
            "p50": round(percentile(gateway, 0.5) * ms, 1),
            "p99": round(percentile(gateway, 0.99) * ms, 1),
        },
        "added_ms": {
            "p50": round((percentile(gateway, 0.5) - percentile(direct, 0.5)) * ms, 1),
            "p99": round((percentile(gateway, 0.99) - percentile(direct, 0.99)) * ms, 1),
        },
    }


async def _one_client(direct: Target, gateway: Target, requests: int) -> dict[str, Any]:
    spec = f"gw1@ttft={FIRST_TOKEN_S},delay=0.005,tokens=20"
    times: dict[str, list[float]] = {"direct": [], "gateway": []}
    async with aiohttp.ClientSession() as session:
        for target in (direct, gateway):  # warm both connection pools
            await target.stream(session, spec)
        for _ in range(requests):
            times["direct"].append(await direct.stream(session, spec))
            times["gateway"].append(await gateway.stream(session, spec))
    return {**_added(times["direct"], times["gateway"]), "target_added_p50_ms": 4}


async def _sixteen_clients(direct: Target, gateway: Target, rounds: int) -> dict[str, Any]:
    spec = f"gw16@ttft={FIRST_TOKEN_S},delay=0.005,tokens=20"
    times: dict[str, list[float]] = {"direct": [], "gateway": []}
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(rounds):
            for name, target in (("direct", direct), ("gateway", gateway)):
                batch = await asyncio.gather(*(target.stream(session, spec) for _ in range(16)))
                times[name].extend(batch)
    return {**_added(times["direct"], times["gateway"]), "target_added_p50_ms": 20}


async def _requests_per_s(target: Target, seconds: float) -> dict[str, Any]:
    spec = "tp@ttft=0,delay=0,tokens=10"
    completed = 0
    failed: list[str] = []
    deadline = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal completed
        while time.monotonic() < deadline:
            try:
                await target.stream(session, spec)
                completed += 1
            except (RuntimeError, aiohttp.ClientError) as exc:
                failed.append(str(exc)[:200])

    connector = aiohttp.TCPConnector(limit=THROUGHPUT_CLIENTS * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(THROUGHPUT_CLIENTS)))
        elapsed = time.monotonic() - started
    return {
        "clients": THROUGHPUT_CLIENTS,
        "seconds": round(elapsed, 1),
        "requests_per_s": round(completed / elapsed, 1),
        "failed": len(failed),
        "first_failure": failed[0] if failed else None,
    }


async def gateway_report(
    *, base_url: str, upstream_url: str, credential_label: str, token: str, daphne_pid: int,
    quick: bool = False,
) -> dict[str, Any]:  # fmt: skip
    direct = Target(f"{upstream_url}/v1/chat/completions", "", "sk-bench-not-a-real-key")
    gateway = Target(f"{base_url}/v1/chat/completions", f"{credential_label}/", token)
    peak = {"rss": 0.0}
    done = asyncio.Event()

    async def sample_memory() -> None:
        while not done.is_set():
            peak["rss"] = max(peak["rss"], rss_mb(daphne_pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_memory())
    try:
        report = {
            "ttft_one_client": await _one_client(direct, gateway, 5 if quick else 50),
            "ttft_16_clients": await _sixteen_clients(direct, gateway, 2 if quick else ROUNDS_16),
            "throughput": {
                "gateway": await _requests_per_s(gateway, 2 if quick else 10),
                "upstream_alone": await _requests_per_s(direct, 2 if quick else 5),
                "target_requests_per_s": 100,
            },
        }
    finally:
        done.set()
        await sampler
    report["daphne_peak_rss_mb"] = round(peak["rss"], 1)
    report["target_rss_mb"] = 150
    return report
