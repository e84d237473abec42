"""The SSRF guard on base URLs: at save time, at connect time, and across redirects."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from pytest_django.fixtures import Settings as SettingsWrapper

from fusion.testing.upstream import Upstream
from workbench.accounts.models import User
from workbench.keys.models import Credential, Scope
from workbench.keys.services import credential_check
from workbench.keys.ssrf import (
    BlockedAddressError,
    UnsafeURLError,
    check_base_url,
    safe_async_client,
)

_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture
def no_private(settings: SettingsWrapper) -> None:
    """Production-like: nothing private is allowed, not even loopback."""
    settings.FUSION_PRIVATE_HOSTS_ALLOWED = []


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """Make host names resolve to chosen addresses (no network here, and none needed)."""

    def install(table: dict[str, str]) -> None:
        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host in table:
                return _real_getaddrinfo(table[host], port, *args, **kwargs)
            return _real_getaddrinfo(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    return install


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:11434/v1", "loopback"),
        ("http://[::1]:8000/v1", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://localhost:11434/v1", "loopback"),
        ("http://10.0.0.7/v1", "private"),
        ("http://192.168.1.1/v1", "private"),
        ("http://224.0.0.1/v1", "multicast"),
        ("http://240.0.0.1/v1", "reserved"),
        ("http://0.0.0.0:8000/v1", "unspecified"),
        ("http://[::ffff:127.0.0.1]/v1", "loopback"),
        ("http://100.64.0.1/v1", "non-public"),
    ],
)
def test_it_refuses_a_base_url_with_a_private_address(no_private: None, url: str, why: str) -> None:
    with pytest.raises(UnsafeURLError) as caught:
        check_base_url(url)
    assert why in caught.value.message
    assert caught.value.field == "base_url"


def test_it_refuses_a_name_that_resolves_to_a_private_address(
    no_private: None, fake_dns: Callable[[dict[str, str]], None]
) -> None:
    fake_dns({"llm.internal.example": "10.1.2.3"})
    with pytest.raises(UnsafeURLError, match=r"llm\.internal\.example resolves to a private"):
        check_base_url("https://llm.internal.example/v1")


def test_it_accepts_a_public_address(no_private: None) -> None:
    check_base_url("https://8.8.8.8/v1")


def test_it_accepts_private_hosts_and_networks_that_are_allowed(
    settings: SettingsWrapper, fake_dns: Callable[[dict[str, str]], None]
) -> None:
    fake_dns({"vllm.lan": "10.1.2.3", "gpu.svc.cluster.local": "10.9.9.9"})
    settings.FUSION_PRIVATE_HOSTS_ALLOWED = [
        "127.0.0.0/8",
        "::1",
        "vllm.lan",
        "*.svc.cluster.local",
    ]
    check_base_url("http://127.0.0.1:11434/v1")
    check_base_url("http://[::1]:8000/v1")
    check_base_url("http://vllm.lan:8000/v1")
    check_base_url("http://gpu.svc.cluster.local/v1")
    with pytest.raises(UnsafeURLError):
        check_base_url("http://169.254.169.254/")


def test_it_requires_https_in_production_except_for_allowed_private_hosts(
    settings: SettingsWrapper,
) -> None:
    settings.EMBEDDED = False
    settings.DEBUG = False
    settings.FUSION_PRIVATE_HOSTS_ALLOWED = ["127.0.0.0/8"]
    with pytest.raises(UnsafeURLError, match="https"):
        check_base_url("http://8.8.8.8/v1")
    check_base_url("https://8.8.8.8/v1")
    check_base_url("http://127.0.0.1:11434/v1")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://8.8.8.8/",
        "https://user:secret@8.8.8.8/v1",
        "https:///v1",
        "https://8.8.8.8/v1?key=x",
        "https://does-not-resolve.invalid/v1",
    ],
)
def test_it_refuses_urls_that_are_not_plain_api_roots(no_private: None, url: str) -> None:
    with pytest.raises(UnsafeURLError):
        check_base_url(url)


# --- at connect time ------------------------------------------------------------------------


async def test_it_refuses_to_connect_to_a_private_address(no_private: None) -> None:
    async with Upstream() as up, safe_async_client() as client:
        with pytest.raises(BlockedAddressError, match="loopback"):
            await client.get(f"{up.url}/v1/models")
        assert up.calls() == 0


async def test_it_makes_a_refused_address_a_permanent_provider_error(no_private: None) -> None:
    from fusion.errors import ProviderError
    from fusion.providers.openai import OpenAIProvider
    from fusion.types import ChatRequest, Message

    async with Upstream() as up, safe_async_client() as client:
        provider = OpenAIProvider(name="local", base_url=f"{up.url}/v1", client=client)
        request = ChatRequest("gpt-4o", (Message("user", "hi"),))
        with pytest.raises(ProviderError) as refused:
            async for _ in provider.stream(request, None):
                pass
        assert refused.value.permanent, "retrying a refused address cannot help"
        assert "loopback" in str(refused.value)
        assert up.calls() == 0


async def test_it_connects_when_the_address_is_allowed(settings: SettingsWrapper) -> None:
    settings.FUSION_PRIVATE_HOSTS_ALLOWED = ["127.0.0.1/32"]
    async with Upstream() as up, safe_async_client() as client:
        response = await client.get(f"{up.url}/v1/models")
        assert response.status_code == 200


async def test_it_checks_the_address_again_at_connect_time(
    no_private: None, fake_dns: Callable[[dict[str, str]], None]
) -> None:
    # DNS rebinding: the name looked public when saved and points at loopback when called.
    fake_dns({"rebind.example": "8.8.8.8"})
    check_base_url("https://rebind.example/v1")
    fake_dns({"rebind.example": "127.0.0.1"})
    async with Upstream() as up, safe_async_client() as client:
        with pytest.raises(BlockedAddressError, match=r"rebind\.example resolves to a loopback"):
            await client.get(f"http://rebind.example:{up.port}/v1/models")
        assert up.calls() == 0


@contextlib.asynccontextmanager
async def redirector(target: str) -> AsyncIterator[str]:
    """A loopback server answering every request with a redirect to ``target``."""

    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(target)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/admin"]
)
async def test_it_does_not_follow_a_redirect_to_a_private_address(
    settings: SettingsWrapper, target: str
) -> None:
    settings.FUSION_PRIVATE_HOSTS_ALLOWED = ["127.0.0.1/32"]  # the redirector itself is allowed
    async with redirector(target) as base:
        async with safe_async_client(follow_redirects=True) as client:
            with pytest.raises(BlockedAddressError, match=r"private|link-local|not allowed"):
                await client.get(f"{base}/v1/models")
        # And by default redirects are not followed at all.
        async with safe_async_client() as client:
            response = await client.get(f"{base}/v1/models")
            assert response.status_code == 302


@pytest.mark.django_db
def test_it_refuses_at_test_time_a_url_that_became_disallowed(
    settings: SettingsWrapper,
    alice: User,
    make_credential: Callable[..., Credential],
    upstream: Upstream,
) -> None:
    credential = make_credential(
        alice,
        provider="openai_compatible",
        scope=Scope.WORKSPACE,
        base_url=f"{upstream.url}/v1",
    )
    assert credential_check(credential=credential, user=alice).ok
    settings.FUSION_PRIVATE_HOSTS_ALLOWED = []
    result = credential_check(credential=credential, user=alice)
    assert not result.ok
    assert "Refused to connect" in result.message
    assert "loopback" in result.message


async def test_it_ignores_proxy_settings_from_the_environment(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy would make the guard check the proxy's address instead of the provider's.
    settings.FUSION_PRIVATE_HOSTS_ALLOWED = ["127.0.0.1/32"]
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.0.0.1:3128")
    async with Upstream() as up, safe_async_client() as client:
        assert (await client.get(f"{up.url}/v1/models")).status_code == 200
