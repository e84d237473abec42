"""A guard against server-side request forgery through a credential's ``base_url``.

A user who may add an OpenAI-compatible server chooses where the workbench sends requests, so
without a guard they could make it call the cloud metadata service (169.254.169.254), the
database, Redis or anything else on the private network. The rules:

- the host is resolved and refused when any of its addresses is loopback, private, link-local,
  multicast, reserved or otherwise not globally routable, unless the host name or the address's
  network is listed in ``FUSION_PRIVATE_HOSTS_ALLOWED`` (the embedded default lists loopback so
  a local Ollama or vLLM works);
- in production (neither ``EMBEDDED`` nor ``DEBUG``) plain ``http`` is refused, except for
  allowed private hosts: a key sent in clear over the internet is a leak, while a server on the
  operator's own network usually has no TLS at all;
- the same check runs again at connect time, on the address actually connected to, so a DNS
  answer that changes after the save (DNS rebinding) or a redirect cannot reach a refused
  address: every provider call goes through ``safe_async_client``.

``check_base_url`` is the save-time check; ``SafeAsyncTransport`` the connect-time one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from fusion.providers.transport import AiohttpClient
from workbench.lib.errors import ServiceError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)

# NAT64 embeds an IPv4 address in the last 32 bits; check that address instead.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeURLError(ServiceError):
    """A base URL the workbench refuses to send requests (and keys) to."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="base_url", code="unsafe_url")


class BlockedAddressError(httpx.ConnectError):
    """A connection refused at connect time because of where it would go.

    ``permanent`` tells the engine not to retry: the address will be refused again.
    """

    permanent = True


@dataclass(frozen=True)
class Policy:
    allowed_hosts: frozenset[str]
    allowed_suffixes: tuple[str, ...]  # from entries like "*.internal" or ".internal"
    allowed_networks: tuple[IPNetwork, ...]
    https_only: bool

    def host_allowed(self, host: str) -> bool:
        name = _normal_host(host)
        return name in self.allowed_hosts or name.endswith(self.allowed_suffixes)

    def address_allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed_networks)


def current_policy() -> Policy:
    """The policy from settings, read on every check so a changed setting applies at once."""
    return _policy(
        tuple(settings.FUSION_PRIVATE_HOSTS_ALLOWED),
        https_only=not (settings.EMBEDDED or settings.DEBUG),
    )


@lru_cache(maxsize=8)
def _policy(entries: tuple[str, ...], *, https_only: bool) -> Policy:
    hosts: set[str] = set()
    suffixes: list[str] = []
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = _normal_host(entry)
        if name.startswith("*."):
            suffixes.append(name[1:])
        elif name.startswith("."):
            suffixes.append(name)
        else:
            hosts.add(name)
    return Policy(frozenset(hosts), tuple(suffixes), tuple(networks), https_only)


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_category(address: IPAddress) -> str | None:
    """Why ``address`` is not public ("loopback", "link-local" …), or None when it is."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return address_category(inner)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "non-public"
    return None


def refusal(host: str, addresses: Iterable[IPAddress], policy: Policy) -> str | None:
    """Why connecting to ``host`` at ``addresses`` is refused, or None when it is allowed."""
    if policy.host_allowed(host):
        return None
    for address in addresses:
        category = address_category(address)
        if category is None or policy.address_allowed(address):
            continue
        if _is_ip_literal(host):
            return f"{host} is a {category} address"
        return f"{host} resolves to a {category} address"
    return None


def _plain_http_refusal(host: str, addresses: Iterable[IPAddress], policy: Policy) -> str | None:
    if not policy.https_only or policy.host_allowed(host):
        return None
    addresses = list(addresses)
    if addresses and all(policy.address_allowed(a) for a in addresses):
        return None
    return "Use https: plain http is only allowed for hosts in FUSION_PRIVATE_HOSTS_ALLOWED."


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(_normal_host(host))
    except ValueError:
        return False
    return True


def _unique_addresses(infos: Iterable[tuple[Any, ...]]) -> list[IPAddress]:
    seen: dict[IPAddress, None] = {}
    for info in infos:
        # sockaddr's first item is the address; IPv6 may carry a "%scope" suffix.
        raw = str(info[4][0]).split("%", 1)[0]
        seen.setdefault(ipaddress.ip_address(raw), None)
    return list(seen)


def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    infos = socket.getaddrinfo(_normal_host(host), port, type=socket.SOCK_STREAM)
    return _unique_addresses(infos)


async def aresolve(host: str, port: int | None = None) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(_normal_host(host), port, type=socket.SOCK_STREAM)
    return _unique_addresses(infos)


def check_base_url(url: str) -> None:
    """Refuse a base URL the workbench must not call; raise ``UnsafeURLError`` saying why."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UnsafeURLError("This is not a valid URL.") from None
    if parts.scheme not in {"http", "https"}:
        raise UnsafeURLError("The URL must start with https:// (or http:// for a local server).")
    host = parts.hostname
    if not host:
        raise UnsafeURLError("The URL has no host name.")
    if parts.username or parts.password:
        # A secret in the URL would show wherever the URL does; keys go in the key field.
        raise UnsafeURLError("Put credentials in the API key field, not in the URL.")
    if parts.query or parts.fragment:
        raise UnsafeURLError("The base URL cannot have a query string or fragment.")
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        raise UnsafeURLError(f"The host {host} could not be resolved.") from None
    policy = current_policy()
    reason = refusal(host, addresses, policy)
    plain_http = _plain_http_refusal(host, addresses, policy) if parts.scheme == "http" else None
    if reason is not None:
        raise UnsafeURLError(
            f"Not allowed: {reason}. An administrator can allow a private host in "
            "FUSION_PRIVATE_HOSTS_ALLOWED."
        )
    if plain_http is not None:
        raise UnsafeURLError(plain_http)


async def checked_addresses(
    host: str, port: int | None, timeout: float | None = None
) -> list[IPAddress]:
    """Every address of ``host``, once each has passed the policy; ``BlockedAddressError``
    otherwise. Resolution failures raise as they come (``OSError``, ``TimeoutError``)."""
    addresses = await asyncio.wait_for(aresolve(host, port), timeout)
    reason = refusal(host, addresses, current_policy())
    if reason is not None:
        raise BlockedAddressError(f"Refused to connect: {reason}, which is not allowed")
    return addresses


async def check_plain_http(host: str) -> None:
    """Refuse plain http to anything but an allowed private host, outside the embedded mode
    (keys would cross the network in clear)."""
    policy = current_policy()
    if not policy.https_only or policy.host_allowed(host):
        return
    try:
        addresses = await aresolve(host)
    except (OSError, UnicodeError):
        addresses = []
    # Name a private address first: it is the more telling reason of the two.
    reason = refusal(host, addresses, policy) or _plain_http_refusal(host, addresses, policy)
    if reason is not None:
        raise BlockedAddressError(f"Refused to connect to {host}: {reason}")


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves each host itself, checks every address, then connects to a checked address.

    Connecting to the address that was checked (not the name again) closes the gap in which a
    second DNS answer could differ; TLS still verifies the certificate against the host name,
    which httpcore passes separately as the SNI name.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(host, port, timeout)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from None
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError("Refused to connect: unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class SafeAsyncTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection passes the SSRF check.

    It never uses a proxy (a proxy would make the connect-time check see the proxy's address,
    not the provider's). Redirects that a client follows come back through here, so a redirect
    to a refused address fails like a direct request would.
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits = DEFAULT_LIMITS,
        verify: bool = True,
        http2: bool = False,
        retries: int = 0,
    ) -> None:
        super().__init__(limits=limits, verify=verify, http2=http2, trust_env=False)
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            retries=retries,
            network_backend=GuardedNetworkBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            if request.url.scheme == "http":
                await check_plain_http(request.url.host)
            return await super().handle_async_request(request)
        except BlockedAddressError as exc:
            exc.request = request
            raise


def safe_async_client(
    *,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    max_connections: int = 200,
    max_keepalive_connections: int = 50,
    keepalive_expiry: float = 30.0,
    follow_redirects: bool = False,
) -> httpx.AsyncClient:
    """The HTTP client for every provider call: pooled, SSRF-guarded, ignoring proxy env vars.

    Create it inside the event loop that will use it and close it there (``async with``).
    """
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry,
    )
    return httpx.AsyncClient(
        transport=SafeAsyncTransport(limits=limits),
        timeout=timeout,
        follow_redirects=follow_redirects,
        trust_env=False,
    )


async def _connect_guard(host: str, port: int) -> list[str]:
    try:
        return [str(address) for address in await checked_addresses(host, port)]
    except UnicodeError as exc:
        raise OSError(f"could not resolve {host}: {exc}") from None


async def _request_check(scheme: str, host: str, port: int) -> None:
    if scheme == "http":
        await check_plain_http(host)
    elif scheme != "https":
        raise BlockedAddressError(f"Refused: {scheme}:// is not a provider URL")


def safe_provider_client(*, max_connections: int = 0) -> AiohttpClient:
    """The client runs and the gateway call providers through: aiohttp (a fraction of httpx's
    CPU per streamed chunk, see ``fusion.providers.transport``) with the same guard as
    ``safe_async_client``: every new connection goes only to addresses that passed the
    policy, IP literals included; plain http only where the policy allows it; no proxy, no
    redirects. ``max_connections`` 0: no limit.

    Make it on the event loop that will use it, and close it there.
    """
    return AiohttpClient(
        max_connections=max_connections, guard=_connect_guard, check_request=_request_check
    )
