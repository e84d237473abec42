"""The SSRF guard against every spelling of a private address, at save time and at connect time.

Production-like: ``FUSION_PRIVATE_HOSTS_ALLOWED = []``. No network here: names resolve through a
patched ``socket.getaddrinfo``, and "public" servers are loopback servers reached through a
network backend that reroutes two public addresses to them.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpcore
import httpx
import pytest
from aiohttp import web
from pytest_django.fixtures import Settings as SettingsWrapper

from fusion.providers.transport import HttpRequest, TransportError
from workbench.keys import ssrf
from workbench.keys.ssrf import BlockedAddressError, UnsafeURLError, check_base_url

_real_getaddrinfo = socket.getaddrinfo

SPELLINGS = [
    # loopback
    "127.0.0.1",
    "127.1",
    "127.255.255.254",
    "0.0.0.0",
    "0",
    "localhost",
    "LOCALHOST.",
    # private ranges
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.1",
    "100.64.0.1",  # carrier-grade NAT
    # link-local and cloud metadata
    "169.254.169.254",
    "[fe80::1]",
    "[fd00:ec2::254]",  # AWS metadata over IPv6 (unique local)
    # IPv6 forms of loopback and friends
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:7f00:1]",
    "[::ffff:169.254.169.254]",
    "[::ffff:a00:1]",
    "[64:ff9b::7f00:1]",  # NAT64
    "[2002:7f00:1::]",  # 6to4
    # decimal, octal and hex spellings of 127.0.0.1 and 169.254.169.254
    "2130706433",
    "017700000001",
    "0x7f000001",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "0177.1",
    "2852039166",
    "0xa9fea9fe",
]


@pytest.fixture(autouse=True)
def production_like(settings: SettingsWrapper) -> None:
    settings.FUSION_PRIVATE_HOSTS_ALLOWED = []


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    def install(table: dict[str, str]) -> None:
        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            key = host.decode() if isinstance(host, bytes) else host
            return _real_getaddrinfo(table.get(key, host), port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    return install


@pytest.mark.parametrize("host", SPELLINGS)
@pytest.mark.parametrize("scheme", ["https", "http"])
def test_it_refuses_every_spelling_at_save_time(host: str, scheme: str) -> None:
    with pytest.raises(
        UnsafeURLError,
        match=r"Not allowed: .* (loopback|private|link-local|unspecified|non-public)",
    ):
        check_base_url(f"{scheme}://{host}:8443/v1")


@pytest.mark.parametrize("host", SPELLINGS)
async def test_it_refuses_every_spelling_at_connect_time(host: str) -> None:
    backend = ssrf.GuardedNetworkBackend()
    with pytest.raises(BlockedAddressError, match="Refused to connect"):
        await backend.connect_tcp(host.strip("[]"), 9, timeout=2)


@pytest.mark.parametrize("host", SPELLINGS)
async def test_it_refuses_every_spelling_through_the_client(host: str) -> None:
    async with ssrf.safe_async_client(timeout=2) as client:
        # httpx itself rejects a few spellings (0177.0.0.1) before any connection.
        with pytest.raises((BlockedAddressError, httpx.InvalidURL)):
            await client.get(f"https://{host}:9/v1/models")


async def provider_get(url: str) -> None:
    """A GET through the client runs and the gateway call providers with (aiohttp)."""
    async with ssrf.safe_provider_client() as client:
        request = HttpRequest(method="GET", url=url, headers={}, connect_timeout=2)
        async with client.open(request):
            pass


@pytest.mark.parametrize("host", SPELLINGS)
async def test_it_refuses_every_spelling_through_the_provider_client(host: str) -> None:
    with pytest.raises(TransportError) as refused:
        await provider_get(f"https://{host}:9/v1/models")

    # Refused by the guard, for good (never retried), or by the URL parser before any socket.
    assert refused.value.permanent, refused.value
    assert refused.value.kind == "url" or "Refused" in str(refused.value)


async def test_the_provider_client_refuses_plain_http_in_production(
    settings: SettingsWrapper, fake_dns: Callable[[dict[str, str]], None]
) -> None:
    settings.EMBEDDED = False  # production: https only
    fake_dns({"api.public.example": PUBLIC_A})
    with pytest.raises(TransportError, match="Use https") as refused:
        await provider_get("http://api.public.example/v1/models")
    assert refused.value.permanent


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.1.2.3", "172.20.0.5", "192.168.5.5", "169.254.169.254", "::1"]
)
async def test_it_refuses_a_name_that_resolves_to_a_private_address(
    fake_dns: Callable[[dict[str, str]], None], address: str
) -> None:
    fake_dns({"api.evil.example": address})
    with pytest.raises(UnsafeURLError, match="resolves to a"):
        check_base_url("https://api.evil.example/v1")
    async with ssrf.safe_async_client(timeout=2) as client:
        with pytest.raises(BlockedAddressError, match="resolves to a"):
            await client.get("https://api.evil.example/v1/models")
    with pytest.raises(TransportError, match="resolves to a"):
        await provider_get("https://api.evil.example/v1/models")


async def test_it_refuses_a_name_with_one_private_address_among_public_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "mixed.example":
            return [
                *_real_getaddrinfo("8.8.8.8", port, *args, **kwargs),
                *_real_getaddrinfo("10.0.0.9", port, *args, **kwargs),
            ]
        return _real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(UnsafeURLError, match="private"):
        check_base_url("https://mixed.example/v1")
    async with ssrf.safe_async_client(timeout=2) as client:
        with pytest.raises(BlockedAddressError, match="private"):
            await client.get("https://mixed.example/v1/models")
    with pytest.raises(TransportError, match="private"):
        await provider_get("https://mixed.example/v1/models")


# --- a redirect chain: public -> public -> private ---------------------------------------------

PUBLIC_A, PUBLIC_B = "8.8.8.8", "8.8.4.4"


@asynccontextmanager
async def redirecting_server(location: str, hits: list[str]) -> AsyncIterator[int]:
    async def handler(request: web.Request) -> web.Response:
        hits.append(request.host)
        raise web.HTTPFound(location)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "final",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://internal.example/admin",
    ],
)
async def test_it_stops_a_redirect_chain_at_its_private_hop(
    settings: SettingsWrapper,
    monkeypatch: pytest.MonkeyPatch,
    fake_dns: Callable[[dict[str, str]], None],
    final: str,
) -> None:
    settings.EMBEDDED = True  # plain http to the two "public" servers, as in the embedded mode
    fake_dns({"a.example": PUBLIC_A, "b.example": PUBLIC_B, "internal.example": "10.0.0.5"})
    hits: list[str] = []
    async with (
        redirecting_server(final, hits) as port_b,
        redirecting_server(f"http://b.example:{port_b}/v1/models", hits) as port_a,
    ):
        ports = {PUBLIC_A: port_a, PUBLIC_B: port_b}

        class Rerouting(httpcore.AnyIOBackend):
            """Reach the two "public" addresses at the loopback servers; refuse the rest."""

            async def connect_tcp(
                self, host: str, port: int, timeout: float | None = None, **kwargs: Any
            ) -> httpcore.AsyncNetworkStream:
                if host not in ports:
                    raise AssertionError(f"the guard let a connection to {host}:{port} through")
                return await super().connect_tcp("127.0.0.1", ports[host], timeout, **kwargs)

        monkeypatch.setattr(httpcore, "AnyIOBackend", Rerouting)
        async with ssrf.safe_async_client(follow_redirects=True, timeout=5) as client:
            with pytest.raises(BlockedAddressError):
                await client.get(f"http://a.example:{port_a}/v1/models")

    assert [h.split(":")[0] for h in hits] == ["a.example", "b.example"]  # both public hops ran


async def test_the_provider_client_never_follows_a_redirect(settings: SettingsWrapper) -> None:
    """A provider answering 302 to the metadata address gets its 302 back, not a second hop."""
    settings.FUSION_PRIVATE_HOSTS_ALLOWED = ["127.0.0.1"]  # the redirecting server itself
    hits: list[str] = []
    async with (
        redirecting_server("http://169.254.169.254/latest/meta-data/", hits) as port,
        ssrf.safe_provider_client() as client,
    ):
        request = HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/v1/models", headers={})
        async with client.open(request) as response:
            status = response.status

    assert status == 302
    assert len(hits) == 1


def test_it_accepts_a_public_address(fake_dns: Callable[[dict[str, str]], None]) -> None:
    """The guard is not a blanket refusal: this is what makes the refusals above mean something."""
    fake_dns({"api.openai.example": "104.18.6.192"})
    check_base_url("https://api.openai.example/v1")
    check_base_url("https://104.18.6.192/v1")


@pytest.mark.parametrize(
    "url",
    [
        "https://public.example@127.0.0.1/v1",
        "https://127.0.0.1#@public.example/v1",
        "https://127.0.0.1?@public.example/v1",
        "https://public.example\\@127.0.0.1/v1",
        "https://127.0.0.1:443\\@public.example/v1",
        "https://%31%32%37.0.0.1/v1",
        "https://127\u30020\u30020\u30021/v1",  # ideographic full stops
        "https://\u2460\u2461\u2466.0.0.1/v1",  # circled digits
        "https://localhost%00.public.example/v1",
        "https:///127.0.0.1/v1",
        "https:\\\\127.0.0.1/v1",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "unix:///var/run/redis.sock",
    ],
)
def test_it_refuses_urls_that_parsers_could_read_two_ways(
    fake_dns: Callable[[dict[str, str]], None], url: str
) -> None:
    fake_dns({"public.example": PUBLIC_A})
    with pytest.raises(UnsafeURLError):
        check_base_url(url)
