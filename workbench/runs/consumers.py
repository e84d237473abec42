"""The websocket a browser watches a run through: ``/ws/runs/<id>/?after=<seq>``.

On connect: check access (anonymous 4403, no access or unknown run 4404), join the run's group,
then send a ``run.snapshot`` covering every event up to its seq, then the live tail. Joining
before reading the snapshot means no event can fall between the two; events the snapshot
already covers are dropped, and a gap (an event the layer lost) is healed by a new snapshot.

``?after=<seq>`` says what the client already holds. When that is exactly the seq the snapshot
covers (nothing happened while it was away, or it reloaded a page rendered at that seq), the
snapshot is light: every status, but no text — only each part's length, so the client can
check its copy and ask for a full one (``"snapshot"``) if they differ. Otherwise the snapshot
is full. A client *ahead* of the server (whose live state was lost) gets a full one too: its
texts cannot be trusted to match what the server will append to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from redis.exceptions import RedisError

from workbench.curation.blind import live_scrubber
from workbench.runs import selectors
from workbench.runs.live import LiveStore, merge_states
from workbench.runs.publish import run_group, shared_redis

CLOSE_UNAUTHENTICATED = 4403
CLOSE_NOT_FOUND = 4404
TERMINAL = frozenset({"finished", "finished_without_verdict", "failed", "cancelled"})
# How often a watcher checks that no event went missing with nothing after it to reveal the
# gap (a publish racing the subscription, a Redis restart).
WATCHDOG_S = 1.0
log = logging.getLogger(__name__)


class RunConsumer(AsyncWebsocketConsumer):
    run_id: str
    last_sent: int

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        run_id = str(self.scope["url_route"]["kwargs"]["run_id"])
        run = await sync_to_async(selectors.run_for_user)(user, run_id)
        if run is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.run_id = str(run.pk)
        self.last_sent = 0
        # Blind mode: names blanked for a person who has not judged yet. Decided once per
        # connection: the page shows the names again when it is loaded after judging.
        self.scrubber = await sync_to_async(live_scrubber)(run, user)
        self.redis = shared_redis()
        self.live = LiveStore(self.redis)
        self.ended = False
        await self.channel_layer.group_add(run_group(self.run_id), self.channel_name)
        await self.send_snapshot(after=_after(self.scope.get("query_string", b"")))
        self.watchdog = asyncio.create_task(self._watchdog())

    async def disconnect(self, code: int) -> None:
        if getattr(self, "run_id", None):
            self.watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watchdog
            await self.channel_layer.group_discard(run_group(self.run_id), self.channel_name)

    async def _watchdog(self) -> None:
        """Resend a snapshot when the live seq is ahead of what this client got and stays so."""
        behind_since: int | None = None
        while not self.ended:
            await asyncio.sleep(WATCHDOG_S)
            try:
                seq = await self.live.current_seq(self.run_id)
                if seq > self.last_sent:
                    if behind_since == self.last_sent:  # no progress for a whole period
                        await self.send_snapshot()
                    behind_since = self.last_sent
                else:
                    behind_since = None
            except RedisError as exc:  # Redis restarting: try again next period
                log.warning("run %s watchdog: %s", self.run_id, type(exc).__name__)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The protocol is server to client; a client asks for a fresh snapshot with "snapshot".
        if text_data and text_data.strip() == '"snapshot"':
            await self.send_snapshot()

    async def send_snapshot(self, *, after: int | None = None) -> None:
        """Send the state; light (texts left out) when the client holds exactly this seq."""
        seq, state = await self.read_state()
        self.last_sent = seq
        self.ended = state.get("run", {}).get("status") in TERMINAL
        message: dict[str, Any] = {"seq": seq, "run": self.run_id, "type": "run.snapshot"}
        if after is not None and after == seq:
            message["light"] = True
            state = {
                **state,
                "parts": {part: _without_text(d) for part, d in state["parts"].items()},
            }
        message["state"] = state if self.scrubber is None else self.scrubber.scrub(state)
        await self.send(text_data=json.dumps(message))

    async def read_state(self) -> tuple[int, dict[str, Any]]:
        live = await self.live.snapshot(self.run_id)
        if live is not None:
            db_seq, db_state = await self._db_state()
            # The live keys are stale (Redis was restarted), or the run has ended and its
            # stored record, written last, is the whole truth.
            if db_seq > live.seq or db_state.get("run", {}).get("status") in TERMINAL:
                return db_seq, db_state
            return live.seq, merge_states(db_state, live)
        return await self._db_state()

    async def _db_state(self) -> tuple[int, dict[str, Any]]:
        run = await sync_to_async(selectors.run_for_user)(self.scope["user"], self.run_id)
        if run is None:  # access removed while watching
            await self.close(code=CLOSE_NOT_FOUND)
            return self.last_sent, {}
        return await sync_to_async(selectors.run_state_from_db)(run)

    async def run_events(self, message: dict[str, Any]) -> None:
        """A batch of encoded events from the worker, with their seqs alongside."""
        for seq, encoded in zip(message["seqs"], message["events"], strict=True):
            if seq <= self.last_sent:
                # The snapshot covered it. But one from the database can cover the run's end
                # by seq before the run's final status is written: then this event is the
                # only word that the run ended, and a fresh snapshot carries it.
                if not self.ended and _is_run_end(encoded):
                    await self.send_snapshot()
                continue
            if seq != self.last_sent + 1:
                await self.send_snapshot()  # a lost event: start again from a snapshot
                continue
            self.last_sent = seq
            if self.scrubber is not None:
                encoded = json.dumps(self.scrubber.scrub(json.loads(encoded)))
            await self.send(text_data=encoded)
            if _is_run_end(encoded):
                self.ended = True


def _is_run_end(encoded: str) -> bool:
    # Most events are not the run's: only those are decoded.
    if '"type": "run.' not in encoded[:120]:
        return False
    return json.loads(encoded).get("type") in {"run.finished", "run.failed", "run.cancelled"}


def _after(query_string: bytes) -> int | None:
    """The ``after`` the client sent, or None (absent or not a seq)."""
    values = parse_qs(query_string.decode("latin-1")).get("after", [])
    try:
        after = int(values[-1]) if values else None
    except ValueError:
        return None
    return after if after is not None and after >= 0 else None


def _without_text(part: dict[str, Any]) -> dict[str, Any]:
    # The length in code points (the client counts the same way, not in UTF-16 units).
    data = {key: value for key, value in part.items() if key != "text"}
    data["chars"] = len(part.get("text") or "")
    return data
