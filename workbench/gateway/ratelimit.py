"""Per-token rate limit: a sliding window of the last 60 s, shared by every web process.

A fixed clock-minute counter lets a client send twice its limit across a minute boundary (all
of it at :59 and again at :00). Here each accepted request is an entry, scored by its time, in
a Redis sorted set per token; a request is accepted while fewer than ``limit`` entries are
younger than the window. One Lua script does the trim, count and add, so concurrent requests
cannot both take the last slot. Memory: at most ``limit`` entries per token.

The time is Redis's own clock (one clock for every web process) unless the caller passes
``now`` — which tests do, to step through the window deterministically.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import redis
from django.conf import settings
from redis.commands.core import Script

WINDOW_S = 60.0

# KEYS[1]: the token's set. ARGV: now in ms (negative: use Redis's clock), window in ms,
# limit, a unique member. Returns {accepted (0/1), ms until a slot frees when refused}.
_SCRIPT = """
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, math.max(1, tonumber(oldest[2]) + window - now)}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window))
return {1, 0}
"""

_lock = threading.Lock()
_client: redis.Redis | None = None
_script: Script | None = None


def _registered() -> Script:
    global _client, _script
    with _lock:
        if _script is None:
            _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)
            _script = _client.register_script(_SCRIPT)
        return _script


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float  # when refused: until the oldest request leaves the window


def rate_hit(key: str, *, limit: int, now: float | None = None) -> Decision:
    """Count one request against ``key``'s window; refused once ``limit`` are in it."""
    if limit <= 0:
        return Decision(False, WINDOW_S)
    now_ms = -1 if now is None else int(now * 1000)
    allowed, wait_ms = _registered()(
        keys=[key], args=[now_ms, int(WINDOW_S * 1000), limit, uuid.uuid4().hex]
    )
    return Decision(bool(allowed), int(wait_ms) / 1000)
