"""How providers reach HTTP: connect timeouts, loops, the connect-time guard, httpx clients."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import warnings
from collections.abc import Iterator, Sequence

import httpx
import pytest

from fusion.errors import ProviderError
from fusion.providers.base import Timeouts
from fusion.providers.openai import OpenAIProvider
from fusion.providers.transport import AiohttpClient, HttpClient, HttpxClient, TransportError
from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream

from .providerkit import FAST, KEY, ask, collect, make

QUICK_CONNECT = Timeouts(connect=0.2, first_token=2.0, idle=2.0, total=5.0)


@contextlib.contextmanager
def unaccepting_port() -> Iterator[int]:
    """A loopback port that listens but never accepts, its queue full: a connect hangs there.

    Linux drops the SYN of a connection to a listener whose accept queue is full, so the
    client waits for an answer that never comes, as it would for a black-holed address.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@pytest.fixture(params=["aiohttp", "httpx"])
async def any_client(request: pytest.FixtureRequest) -> Iterator[HttpClient]:  # type: ignore[misc]
    """Both ways a provider can be given HTTP: fusion's own client, or an httpx client."""
    if request.param == "aiohttp":
        async with AiohttpClient() as client:
            yield client
    else:
        async with httpx.AsyncClient(trust_env=False) as raw:
            yield HttpxClient(raw)


async def test_it_gives_up_connecting_after_the_connect_timeout(any_client: HttpClient) -> None:
    with unaccepting_port() as port:
        provider = OpenAIProvider(
            name="Blackhole",
            base_url=f"http://127.0.0.1:{port}/v1",
            client=any_client,
            timeouts=QUICK_CONNECT,
        )
        with pytest.raises(ProviderError) as caught:
            await collect(provider, ask("m"))
    assert "could not connect within 0.2s" in str(caught.value)
    assert not caught.value.permanent  # another try may well connect


async def test_it_streams_through_an_httpx_client_too(upstream: Upstream) -> None:
    upstream.script("m", Script(text="through httpx", chunk_sizes=(3,)))
    async with httpx.AsyncClient(trust_env=False) as raw:
        text, end, _ = await collect(make("openai", upstream, HttpxClient(raw)), ask("m"))
        provider = OpenAIProvider(name="p", base_url=f"{upstream.url}/v1", client=raw)
        again, _, _ = await collect(provider, ask("m"))  # a bare httpx client is wrapped
    assert text == again == "through httpx" and end.finish_reason == "stop"


@pytest.mark.parametrize("fail", ["disconnect", "truncate"])
async def test_it_reports_a_cut_stream_alike_through_either_client(
    upstream: Upstream, any_client: HttpClient, fail: str
) -> None:
    upstream.script("cut", Script(tokens=6, fail=fail, fail_after=3))  # type: ignore[arg-type]
    with pytest.raises(ProviderError) as caught:
        await collect(make("openai", upstream, any_client), ask("cut"))
    assert not caught.value.permanent
    assert type(caught.value).__name__ == "TruncatedStream"


# --- event loops ------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_about_unclosed_sessions() -> Iterator[None]:
    log = logging.getLogger("asyncio")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            yield
    finally:
        log.setLevel(level)


def test_it_serves_successive_event_loops_without_a_client_given() -> None:
    up = Upstream()
    url = up.start_in_thread()
    try:
        provider = OpenAIProvider(name="p", base_url=f"{url}/v1", timeouts=FAST)

        async def once() -> str:
            async with provider:  # closes the client it made for this loop
                text, _, _ = await collect(provider, ask("m", "ping"))
                return text

        # Two asyncio.run calls: the second loop gets a client of its own, not the first's.
        assert asyncio.run(once()) == asyncio.run(once()) == "Answer from m: ping"

        async def careless() -> str:  # never closes: the next loop must not inherit it
            text, _, _ = await collect(provider, ask("m", "pong"))
            return text

        # (aiohttp complains, rightly, about the session nobody closed: not news here.)
        with quiet_about_unclosed_sessions():
            assert asyncio.run(careless()) == asyncio.run(careless()) == "Answer from m: pong"
            assert len(provider._own_clients) == 1  # the dead loop's client was let go
            gc.collect()
    finally:
        up.stop_thread()


def test_it_refuses_clearly_to_use_a_client_from_another_loop() -> None:
    up = Upstream()
    url = up.start_in_thread()
    client = AiohttpClient()
    provider = OpenAIProvider(name="p", base_url=f"{url}/v1", client=client, timeouts=FAST)
    try:

        async def once() -> None:
            await collect(provider, ask("m"))

        asyncio.run(once())
        with pytest.raises(RuntimeError, match="belongs to another event loop"):
            asyncio.run(once())
    finally:
        up.stop_thread()


# --- the connect-time guard -------------------------------------------------------------------


class Refused(httpx.ConnectError):
    permanent = True


class Guard:
    """Checks hosts like the workbench's SSRF guard: names go through it, addresses too."""

    def __init__(self, *, refuse: bool, answer: str = "127.0.0.1") -> None:
        self.refuse = refuse
        self.answer = answer
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        if self.refuse:
            raise Refused(f"Refused to connect: {host} is a loopback address")
        return [self.answer]


@pytest.mark.parametrize("host", ["127.0.0.1", "upstream.test"])
async def test_it_lets_the_guard_refuse_a_connection_for_good(
    upstream: Upstream, host: str
) -> None:
    guard = Guard(refuse=True)
    async with AiohttpClient(guard=guard) as client:
        provider = OpenAIProvider(
            name="Guarded", base_url=f"http://{host}:{upstream.port}/v1", client=client
        )
        with pytest.raises(ProviderError) as caught:
            await collect(provider, ask("m"), KEY)
    assert caught.value.permanent, "a refused address is refused again: no retry"
    assert "loopback" in str(caught.value)
    assert guard.asked == [(host, upstream.port)]
    assert upstream.calls() == 0


async def test_it_connects_only_to_the_address_the_guard_checked(upstream: Upstream) -> None:
    # "upstream.test" resolves nowhere: the only way to reach the server is the guard's answer.
    guard = Guard(refuse=False)
    async with AiohttpClient(guard=guard) as client:
        provider = OpenAIProvider(
            name="Guarded", base_url=f"http://upstream.test:{upstream.port}/v1", client=client
        )
        text, _, _ = await collect(provider, ask("m", "hi"))
        await collect(provider, ask("m", "hi"))  # the pooled connection: no second check
    assert text == "Answer from m: hi"
    assert guard.asked == [("upstream.test", upstream.port)]
    assert upstream.requests[0].headers["host"] == f"upstream.test:{upstream.port}"


async def test_it_runs_the_request_check_before_every_request(upstream: Upstream) -> None:
    seen: list[tuple[str, str, int]] = []

    async def no_plain_http(scheme: str, host: str, port: int) -> None:
        seen.append((scheme, host, port))
        if len(seen) > 1:
            raise TransportError("plain http refused", kind="connect", permanent=True)

    async with AiohttpClient(check_request=no_plain_http) as client:
        provider = make("openai", upstream, client)
        await collect(provider, ask("m"))
        with pytest.raises(ProviderError) as caught:
            await collect(provider, ask("m"))
    assert caught.value.permanent and "plain http refused" in str(caught.value)
    assert seen == [("http", "127.0.0.1", upstream.port)] * 2
    assert upstream.calls() == 1


def test_it_refuses_a_proxy_on_a_guarded_client() -> None:
    with pytest.raises(ValueError, match="proxy"):
        AiohttpClient(guard=Guard(refuse=False), proxy="http://127.0.0.1:3128")
