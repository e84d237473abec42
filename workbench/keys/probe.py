"""Ask a provider for its model list with each of a credential's keys (the "Test" button).

Runs the async provider code from sync views on a short-lived SSRF-guarded client; the error
texts shown to the user are the provider's own words, with every key redacted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync

from fusion.errors import ProviderError
from fusion.providers.base import Timeouts
from fusion.providers.registry import build_provider
from fusion.redact import redact
from fusion.types import ApiKey
from workbench.keys.ssrf import safe_async_client

# A person is waiting on the page: fail within seconds, not the minutes a run may take.
PROBE_TIMEOUTS = Timeouts(connect=5.0, first_token=15.0, idle=15.0, total=30.0)
NO_KEY = "no key"


@dataclass(frozen=True)
class KeyProbe:
    key_label: str
    ok: bool
    models: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Target:
    kind: str
    name: str
    base_url: str | None
    options: Mapping[str, Any] | None = None


def probe_models(target: Target, keys: Sequence[ApiKey]) -> list[KeyProbe]:
    """One result per key (or one keyless result), in the order of ``keys``."""
    secrets = [key.secret for key in keys]
    probes: list[KeyProbe] = async_to_sync(_probe)(target, tuple(keys))
    # Belt and braces: the providers redact already, but these texts end up in HTML.
    return [
        KeyProbe(p.key_label, p.ok, p.models, redact(p.error, secrets) if p.error else None)
        for p in probes
    ]


async def _probe(target: Target, keys: tuple[ApiKey, ...]) -> list[KeyProbe]:
    async with safe_async_client() as client:
        try:
            provider = build_provider(
                target.kind,
                name=target.name,
                base_url=target.base_url,
                client=client,
                timeouts=PROBE_TIMEOUTS,
                options=target.options,
            )
        except ValueError as exc:
            return [KeyProbe(key.label, False, error=str(exc)) for key in keys] or [
                KeyProbe(NO_KEY, False, error=str(exc))
            ]

        async def one(key: ApiKey | None) -> KeyProbe:
            label = key.label if key is not None else NO_KEY
            try:
                models = await provider.list_models(key)
            except ProviderError as exc:
                status = f" (HTTP {exc.status})" if exc.status else ""
                return KeyProbe(label, False, error=f"{exc.message}{status}")
            return KeyProbe(label, True, tuple(models))

        return list(await asyncio.gather(*(one(k) for k in (keys or (None,)))))
