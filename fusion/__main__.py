"""Run a fusion from the terminal: ``python -m fusion run --pool pool.toml "prompt"``.

Candidates stream as prefixed lines (``[m1] …``), then the judge (``[judge:score] …``), then
the verdict, the answer and the totals. ``--json`` prints the events as JSON lines instead.
Ctrl-C cancels the run (partial answers are kept). Keys come from environment variables named
in the pool, never from the file itself. The pool file (TOML)::

    mode = "merge"              # best_of | merge | debate
    rounds = 1                  # debate: revision rounds
    debate_judge = "merge"      # debate: best_of | merge
    quorum = 2                  # optional: judge once this many members are done
    deadline_s = 60             # optional: judge when this many seconds have passed
    budget_usd = "0.25"         # optional: refuse or stop past this cost
    max_attempts = 3            # optional: tries per model before falling back
    system_prompt = "Be concise."  # optional, for every member

    [providers.sim]
    kind = "simulated"          # see fusion.providers.registry.PROVIDER_KINDS
    options = { seed = 1 }      # optional, kind-specific

    [providers.openai]
    kind = "openai"
    api_key_env = "OPENAI_API_KEY"   # or a list of variables: a key pool
    # base_url = "https://…/v1"      # needed for openai_compatible

    [[members]]                 # 1 to 16; the same model may appear several times
    provider = "sim"
    model = "sim-fast"
    # id = "m1", temperature = 0.7, max_tokens = 500, system_prompt = "…",
    # fallback_models = ["sim-balanced"]

    [judge]                     # optional: without it the candidates are only shown
    provider = "sim"
    model = "sim-judge"
    # instructions = "…", temperature = 0.0, max_tokens = 800, swap_twice = true
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from fusion.engine import run_fusion
from fusion.errors import FusionError
from fusion.events import Event
from fusion.providers.base import Endpoint
from fusion.providers.http import make_client
from fusion.providers.registry import build_provider
from fusion.providers.transport import HttpClient
from fusion.results import RunResult, spec_from_dict
from fusion.types import ApiKey, RunSpec

WIDTH = 88


class PoolError(ValueError):
    """The pool file is wrong, or names a missing environment variable."""


@dataclass(frozen=True)
class ProviderConfig:
    kind: str
    base_url: str | None
    key_envs: tuple[str, ...]
    options: Mapping[str, Any]


def read_pool(path: Path, prompt: str) -> tuple[RunSpec, dict[str, ProviderConfig]]:
    """Parse a pool file into a spec for ``prompt`` and its providers' configuration."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PoolError(f"cannot read {path}: {exc}") from None
    providers: dict[str, ProviderConfig] = {}
    for name, raw in (data.pop("providers", None) or {}).items():
        unknown = set(raw) - {"kind", "base_url", "api_key_env", "options"}
        if unknown or "kind" not in raw:
            raise PoolError(f"provider {name!r}: needs 'kind'; unknown {sorted(unknown)}")
        envs = raw.get("api_key_env") or ()
        providers[name] = ProviderConfig(
            kind=str(raw["kind"]),
            base_url=raw.get("base_url"),
            key_envs=(envs,) if isinstance(envs, str) else tuple(envs),
            options=dict(raw.get("options") or {}),
        )
    members = []
    for i, member in enumerate(data.pop("members", None) or [], start=1):
        members.append({"id": f"m{i}", **member})
    if "budget_usd" in data:
        data["budget_usd"] = str(data["budget_usd"])
    try:
        spec = spec_from_dict({"mode": "best_of", **data, "prompt": prompt, "members": members})
    except (TypeError, ValueError) as exc:
        raise PoolError(f"{path}: {exc}") from None
    used = {m.provider for m in spec.members} | ({spec.judge.provider} if spec.judge else set())
    missing = used - set(providers)
    if missing:
        raise PoolError(f"{path}: no [providers.{sorted(missing)[0]}] section")
    return spec, providers


def keys_from_env(config: ProviderConfig, env: Mapping[str, str]) -> tuple[ApiKey, ...]:
    keys = []
    for var in config.key_envs:
        secret = env.get(var)
        if not secret:
            raise PoolError(f"environment variable {var} is not set")
        keys.append(ApiKey(label=f"${var} …{secret[-4:]}", secret=secret))
    return tuple(keys)


def build_endpoints(
    providers: Mapping[str, ProviderConfig], client: HttpClient, env: Mapping[str, str]
) -> dict[str, Endpoint]:
    endpoints = {}
    for name, cfg in providers.items():
        try:
            provider = build_provider(
                cfg.kind, name=name, base_url=cfg.base_url, client=client, options=cfg.options
            )
        except ValueError as exc:
            raise PoolError(f"provider {name!r}: {exc}") from None
        endpoints[name] = Endpoint(provider, keys_from_env(cfg, env))
    return endpoints


class Printer:
    """Turns events into prefixed, wrapped lines; interleaved streams stay readable."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.buffers: dict[str, str] = {}

    async def __call__(self, event: Event) -> None:
        d = event.to_dict()
        kind = event.type
        if kind == "candidate.delta":
            self.feed(self.tag(d["candidate"], d["round"]), d["text"])
        elif kind == "judge.delta":
            self.feed(f"{d['judge']}:{d['phase']}", d["text"])
        elif kind == "candidate.started":
            self.line(self.tag(d["candidate"], d["round"]), f"… {d['provider']}/{d['model']}")
        elif kind == "candidate.finished":
            tag = self.tag(d["candidate"], d["round"])
            self.flush(tag)
            cost = "unpriced" if d["cost"] is None else f"${Decimal(d['cost']):.6f}"
            self.line(
                tag, f"✓ {d['latency_ms']:.0f} ms, {d['usage']['output_tokens']} tokens, {cost}"
            )
        elif kind == "candidate.failed":
            tag = self.tag(d["candidate"], d["round"])
            self.flush(tag)
            self.line(tag, f"✗ {d['status']}: {d['error']}")
        elif kind == "judge.started":
            self.line(f"{d['judge']}:{d['phase']}", f"… {d['provider']}/{d['model']}")
        elif kind == "judge.finished":
            for tag in list(self.buffers):
                self.flush(tag)
        elif kind == "call.recorded" and d["call"]["phase"] is not None:
            self.flush(f"{d['call']['candidate']}:{d['call']['phase']}")
        elif kind == "judge.failed":
            self.line("judge", f"✗ {d['error']}")

    @staticmethod
    def tag(candidate: str, round: int) -> str:
        return candidate if round == 0 else f"{candidate}.r{round}"

    def feed(self, tag: str, text: str) -> None:
        buf = self.buffers.get(tag, "") + text
        while True:
            cut = buf.find("\n")
            if cut < 0 and len(buf) > WIDTH:
                cut = buf.rfind(" ", 0, WIDTH)
                cut = WIDTH if cut <= 0 else cut
            if cut < 0:
                break
            self.line(tag, buf[:cut])
            buf = buf[cut + 1 :] if buf[cut : cut + 1] in ("\n", " ") else buf[cut:]
        self.buffers[tag] = buf

    def flush(self, tag: str) -> None:
        rest = self.buffers.pop(tag, "")
        if rest.strip():
            self.line(tag, rest)

    def line(self, tag: str, text: str) -> None:
        print(f"[{tag}] {text}", file=self.out, flush=True)


class JsonLines:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def __call__(self, event: Event) -> None:
        print(json.dumps(event.to_dict(), ensure_ascii=False), file=self.out, flush=True)


def summary(result: RunResult, out: TextIO) -> None:
    print(f"\n=== {result.status} ===", file=out)
    failed = [c for c in result.candidates if c.status != "ok"]
    for c in failed:
        print(f"- {Printer.tag(c.id, c.round)} {c.status}: {c.error}", file=out)
    v = result.verdict
    if v is not None:
        scores = ", ".join(f"{k} {s:g}" for k, s in v.scores.items()) or "-"
        agree = "" if v.agreement is None else f", passes agree: {v.agreement}"
        print(
            f"winner: {v.winner} (confidence {v.confidence:.2f}{agree}); scores: {scores}", file=out
        )
        if v.rationale:
            print(textwrap.fill(v.rationale, WIDTH), file=out)
    if result.judge_error:
        print(f"no verdict: {result.judge_error}", file=out)
    if result.error:
        print(f"error: {result.error}", file=out)
    if result.answer:
        print("\n--- answer ---", file=out)
        print(textwrap.fill(result.answer, WIDTH, replace_whitespace=False), file=out)
    t = result.totals
    cost = f"${t.cost:.6f}" if t.cost is not None else f"${t.priced_cost:.6f} + unpriced calls"
    print(
        f"\n{t.calls} calls, {t.input_tokens} in / {t.output_tokens} out tokens, {cost}, "
        f"{t.wall_ms / 1000:.2f} s",
        file=out,
    )


async def run_command(
    pool: Path, prompt: str, *, as_json: bool, out: TextIO, env: Mapping[str, str]
) -> RunResult:
    spec, providers = read_pool(pool, prompt)
    cancel = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Not possible off the main thread or on some platforms: then Ctrl-C just stops.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, cancel.set)
    sink = JsonLines(out) if as_json else Printer(out)
    # A terminal tool honours HTTP(S)_PROXY, as curl does.
    async with make_client(trust_env=True) as client:
        endpoints = build_endpoints(providers, client, env)
        try:
            result = await run_fusion(
                spec, endpoints, sink, run_id=uuid.uuid4().hex[:12], cancel=cancel
            )
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
    if not as_json:
        summary(result, out)
    return result


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion", description="Run LLM fusions.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="fan a prompt out to a pool and fuse the answers")
    run.add_argument("--pool", type=Path, required=True, help="the pool file (TOML)")
    run.add_argument("--json", action="store_true", help="print the events as JSON lines")
    run.add_argument("prompt", help="the prompt; '-' reads it from standard input")
    args = parser.parse_args(argv)
    stream = out or sys.stdout
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        result = asyncio.run(
            run_command(args.pool, prompt, as_json=args.json, out=stream, env=os.environ)
        )
    except (PoolError, FusionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return {"finished": 0, "finished_without_verdict": 0, "cancelled": 130}.get(result.status, 1)


if __name__ == "__main__":
    sys.exit(main())
