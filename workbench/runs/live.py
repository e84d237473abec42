"""The live state of running runs, kept in Redis where a reconnecting client reads it.

One writer per run (the sink in the worker) and any number of readers (websocket consumers).
Layout, per run:
- ``fw:run:<id>:seq``      the last seq published;
- ``fw:run:<id>:state``    a hash: ``run`` -> run JSON, ``p:<part>`` -> a part's JSON (no text),
                           ``c:<call id>`` -> a call record JSON;
- ``fw:run:<id>:t:<part>`` the text of a part (a candidate ``m1/0`` or a judge pass), appended to.

Writes of one flush are one MULTI/EXEC, and the snapshot is read by one Lua script, so a reader
always sees texts and state that cover exactly the seq it reads: nothing lost, nothing twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

# Live keys outlive the run a little so late readers still find them; the database is the
# record after that.
LIVE_TTL_S = 3600
ENDED_STATUSES = frozenset({"finished", "finished_without_verdict", "failed", "cancelled"})

_SNAPSHOT_LUA = """
local seq = redis.call('GET', KEYS[1])
local state = redis.call('HGETALL', KEYS[2])
local texts = {}
for i = 1, #state, 2 do
  local f = state[i]
  if string.sub(f, 1, 2) == 'p:' then
    local part = string.sub(f, 3)
    texts[#texts + 1] = part
    texts[#texts + 1] = redis.call('GET', ARGV[1] .. part) or ''
  end
end
return {seq or false, state, texts}
"""


def _prefix(run_id: str) -> str:
    return f"fw:run:{run_id}"


@dataclass
class LiveSnapshot:
    seq: int
    run: dict[str, Any]
    parts: dict[str, dict[str, Any]]  # part -> fields + "text"
    calls: list[dict[str, Any]]


@dataclass
class LiveWrite:
    """What one flush changes: text appended per part, state fields replaced, the new seq."""

    seq: int
    appends: dict[str, str] = field(default_factory=dict)
    resets: set[str] = field(default_factory=set)  # parts whose text starts over
    run: dict[str, Any] | None = None
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    expire: bool = False


class LiveStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._snapshot = client.register_script(_SNAPSHOT_LUA)

    async def write(self, run_id: str, change: LiveWrite, *, previous_seq: int = 0) -> bool:
        """Apply one change atomically. False when the stored seq was not ``previous_seq``:
        Redis lost the run's state (a restart), and the writer must send it whole again."""
        prefix = _prefix(run_id)
        state_key = f"{prefix}:state"
        async with self.client.pipeline(transaction=True) as pipe:
            for part in change.resets:
                pipe.set(f"{prefix}:t:{part}", "")
            for part, text in change.appends.items():
                pipe.append(f"{prefix}:t:{part}", text)
            fields: dict[str, str] = {}
            if change.run is not None:
                fields["run"] = json.dumps(change.run)
            for part, data in change.parts.items():
                fields[f"p:{part}"] = json.dumps(data)
            for call_id, data in change.calls.items():
                fields[f"c:{call_id}"] = json.dumps(data)
            if fields:
                pipe.hset(state_key, mapping=fields)
            pipe.set(f"{prefix}:seq", change.seq, get=True)
            if change.expire:
                keys = [f"{prefix}:seq", state_key]
                keys += [f"{prefix}:t:{part}" for part in (*change.parts, *change.appends)]
                for key in keys:
                    pipe.expire(key, LIVE_TTL_S)
            results = await pipe.execute()
        before = results[len(change.resets) + len(change.appends) + (1 if fields else 0)]
        return int(before or 0) == previous_seq

    async def expire_all(self, run_id: str, part_names: list[str]) -> None:
        prefix = _prefix(run_id)
        keys = [f"{prefix}:seq", f"{prefix}:state"] + [f"{prefix}:t:{p}" for p in part_names]
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.expire(key, LIVE_TTL_S)
            await pipe.execute()

    async def snapshot(self, run_id: str) -> LiveSnapshot | None:
        """The live state, or None when the run has none (not started, or long finished)."""
        prefix = _prefix(run_id)
        seq, flat_state, flat_texts = await self._snapshot(
            keys=[f"{prefix}:seq", f"{prefix}:state"], args=[f"{prefix}:t:"]
        )
        if not seq:
            return None
        texts = {_s(flat_texts[i]): _s(flat_texts[i + 1]) for i in range(0, len(flat_texts), 2)}
        run: dict[str, Any] = {}
        parts: dict[str, dict[str, Any]] = {}
        calls: list[dict[str, Any]] = []
        for i in range(0, len(flat_state), 2):
            name, value = _s(flat_state[i]), json.loads(flat_state[i + 1])
            if name == "run":
                run = value
            elif name.startswith("p:"):
                parts[name[2:]] = {**value, "text": texts.get(name[2:], "")}
            elif name.startswith("c:"):
                calls.append(value)
        calls.sort(key=lambda call: call.get("order", 0))
        return LiveSnapshot(seq=int(seq), run=run, parts=parts, calls=calls)

    async def ended(self, run_id: str) -> bool:
        """Whether the live state says the run has ended."""
        raw = await self.client.hget(f"{_prefix(run_id)}:state", "run")
        return bool(raw) and json.loads(raw).get("status") in ENDED_STATUSES

    async def current_seq(self, run_id: str) -> int:
        value = await self.client.get(f"{_prefix(run_id)}:seq")
        return int(value) if value else 0

    async def delete(self, run_id: str) -> None:
        prefix = _prefix(run_id)
        keys = [key async for key in self.client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await self.client.delete(*keys)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def merge_states(db_state: dict[str, Any], live: LiveSnapshot) -> dict[str, Any]:
    """Live state over stored state: stored rows give what the live keys do not repeat
    (queued candidates, display labels); live texts and statuses win."""
    parts = dict(db_state.get("parts", {}))
    for part, data in live.parts.items():
        parts[part] = {**parts.get(part, {}), **data}
    calls = live.calls or db_state.get("calls", [])
    run = {**db_state.get("run", {}), **live.run}
    return {"run": run, "parts": parts, "calls": calls}
