"""How providers reach HTTP: a small client interface, served by aiohttp or by an httpx client.

``HttpProvider`` needs little of HTTP: send one request, read the status and headers, then
the body chunk by chunk as it arrives, and be told in one vocabulary (``TransportError``) what
went wrong below HTTP. Two clients provide that:

- ``AiohttpClient`` (what ``make_client`` gives): aiohttp parses HTTP in C and keeps a flat
  connection pool. httpx's pure-Python stack (httpcore, h11, anyio, plus its client's own
  request, cookie and response layers) was most of the CPU of 200 concurrent streams here,
  with the pool's bookkeeping growing with connections x idle connections.
- ``HttpxClient``: any ``httpx.AsyncClient`` you give a provider is wrapped in one, so a client
  with its own transport (the workbench's SSRF-guarded ``safe_async_client``) keeps working.

**Loops.** A client belongs to one event loop: ``AiohttpClient`` makes its session on the first
request, in the loop that sends it, and refuses with a clear error to be used from another
loop (instead of "Event loop is closed" from deep inside a socket). Make it inside the loop
that uses it and close it there (``async with``).

**Connect-time guard.** ``AiohttpClient(guard=...)`` is called with the host and port of every
new connection (and of every request to an IP literal, which needs no DNS) and returns the
addresses that may be connected to; connections go only to those, so a second DNS answer
cannot differ from the checked one. It refuses by raising an exception with a true
``permanent`` attribute (an ``httpx.ConnectError`` subclass such as the workbench's
``BlockedAddressError`` does), which the provider reports as a permanent failure, exactly as
an httpx transport's refusal is. ``check_request`` (scheme, host, port) runs before every
request, e.g. to refuse plain http. A guarded client never uses a proxy: the guard would only
see the proxy's address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import aiohttp
import certifi
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

# (host, port) -> the addresses a connection to them may use; raises to refuse.
ConnectGuard = Callable[[str, int], Awaitable[Sequence[str]]]
# (scheme, host, port) -> None; raises to refuse the request.
RequestCheck = Callable[[str, str, int], Awaitable[None]]

# url: unusable URL; connect: no connection; lost: the connection failed after it was made;
# protocol: a body that cannot be decoded.
FailureKind = Literal["url", "connect", "connect_timeout", "read_timeout", "lost", "protocol"]


class TransportError(Exception):
    """A request that failed below HTTP. ``permanent``: asking again would fail again."""

    def __init__(self, message: str, *, kind: FailureKind, permanent: bool = False) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.permanent = permanent


class HttpResponse(ABC):
    """An answer whose status and headers have arrived; iterate it for the body's chunks."""

    status: int
    headers: Mapping[str, str]  # case-insensitive

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @property
    @abstractmethod
    def complete(self) -> bool:
        """Whether the whole body has been read (the connection can be reused)."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    params: Mapping[str, str] | None = None
    connect_timeout: float | None = None  # seconds; None: no limit


class HttpClient(ABC):
    """Sends requests: ``async with client.open(request) as response``."""

    @abstractmethod
    def open(self, request: HttpRequest) -> _Opening:
        """The response to ``request``, closed (or its connection pooled) on leaving."""

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _Opening(ABC):
    @abstractmethod
    async def __aenter__(self) -> HttpResponse: ...

    @abstractmethod
    async def __aexit__(self, *exc_info: object) -> None: ...


# --- aiohttp -------------------------------------------------------------------------------


class AiohttpClient(HttpClient):
    def __init__(
        self,
        *,
        max_connections: int = 0,
        keepalive_expiry: float = 30.0,
        verify: bool | ssl.SSLContext = True,
        trust_env: bool = False,
        proxy: str | None = None,
        guard: ConnectGuard | None = None,
        check_request: RequestCheck | None = None,
    ) -> None:
        """``max_connections`` 0: no limit (hundreds of concurrent streams must not queue).

        ``trust_env``: take a proxy from HTTP(S)_PROXY / NO_PROXY. fusion reads no
        environment otherwise; pass ``proxy`` explicitly.
        """
        if guard is not None and (proxy is not None or trust_env):
            raise ValueError("a guarded client cannot use a proxy")
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        if isinstance(verify, ssl.SSLContext):
            self._ssl: ssl.SSLContext | bool = verify
        elif verify:
            # One context for every connection (building one loads the CA bundle: tens of
            # ms), with the CA bundle httpx would use.
            self._ssl = ssl.create_default_context(cafile=certifi.where())
        else:
            self._ssl = False
        self._trust_env = trust_env
        self._proxy = proxy
        self._guard = guard
        self._check_request = check_request
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[float | None, aiohttp.ClientTimeout] = {}

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None:
            resolver = None if self._guard is None else _GuardedResolver(self._guard)
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_expiry,
                ssl=self._ssl,
                resolver=resolver,
                # With a guard every new connection is checked against the policy of the
                # moment, not against an answer cached before the policy changed.
                use_dns_cache=self._guard is None,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=self._trust_env,
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),  # an API client keeps no cookies
            )
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this HTTP client belongs to another event loop; make one client per loop"
            )
        return self._session

    def _timeout(self, connect: float | None) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(connect)
        if timeout is None:
            # Only connecting is bounded here: silence while streaming is the provider's to
            # judge (first token, idle), since keep-alive comments are bytes but not tokens.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect)
            self._timeouts[connect] = timeout
        return timeout

    def open(self, request: HttpRequest) -> _Opening:
        return _AioOpening(self, request)

    async def _send(self, request: HttpRequest) -> aiohttp.ClientResponse:
        session = self._session_here()
        try:
            if self._check_request is not None or self._guard is not None:
                await self._checks(request.url)
            return await session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                params=request.params,
                allow_redirects=False,
                proxy=self._proxy,
                timeout=self._timeout(request.connect_timeout),
            )
        except TransportError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _aiohttp_failure(exc) from exc
        except Exception as exc:
            permanent = getattr(exc, "permanent", None)
            if permanent is None:
                raise
            # A refusal by the guard or the request check, in their own exception type.
            raise TransportError(str(exc), kind="connect", permanent=bool(permanent)) from exc

    async def _checks(self, url: str) -> None:
        try:
            parts = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise TransportError(str(exc), kind="url", permanent=True) from None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if self._check_request is not None:
            await self._check_request(parts.scheme, parts.host, port)
        if self._guard is not None and _is_ip(parts.host):
            # aiohttp connects to an IP literal without asking the resolver: check it here.
            await self._guard(parts.host, port)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AioOpening(_Opening):
    __slots__ = ("_client", "_request", "_response")

    def __init__(self, client: AiohttpClient, request: HttpRequest) -> None:
        self._client = client
        self._request = request
        self._response: _AioResponse | None = None

    async def __aenter__(self) -> HttpResponse:
        self._response = _AioResponse(await self._client._send(self._request))
        return self._response

    async def __aexit__(self, *exc_info: object) -> None:
        if self._response is not None:
            self._response.close()


class _AioResponse(HttpResponse):
    __slots__ = ("_content", "_raw", "headers", "status")

    def __init__(self, raw: aiohttp.ClientResponse) -> None:
        self._raw = raw
        self._content = raw.content
        self.status = raw.status
        self.headers = raw.headers

    def __aiter__(self) -> _AioResponse:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._content.readany()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _aiohttp_failure(exc) from exc
        if not chunk:
            raise StopAsyncIteration
        return chunk

    @property
    def complete(self) -> bool:
        return self._content.at_eof()

    def close(self) -> None:
        if self._content.at_eof():
            self._raw.release()  # whole: the connection goes back to the pool
        else:
            self._raw.close()  # cut short (cancelled, failed): drop the connection now


class _GuardedResolver(AbstractResolver):
    def __init__(self, guard: ConnectGuard) -> None:
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._guard(host, port)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _aiohttp_failure(exc: BaseException) -> TransportError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TransportError(message, kind="connect_timeout")
    if isinstance(exc, TimeoutError):
        return TransportError(message, kind="read_timeout")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return TransportError(message, kind="url", permanent=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError(message, kind="connect")
    return TransportError(message, kind="lost")


# --- httpx ---------------------------------------------------------------------------------


class HttpxClient(HttpClient):
    """An ``httpx.AsyncClient`` (and its transport) behind the provider interface.

    The wrapped client is not closed by ``aclose``: it belongs to whoever made it.
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.httpx = client

    def open(self, request: HttpRequest) -> _Opening:
        timeout = request.connect_timeout
        built = self.httpx.build_request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.body,
            params=request.params,
            timeout=httpx.Timeout(connect=timeout, read=None, write=timeout, pool=None),
        )
        return _HttpxOpening(self.httpx, built)


class _HttpxOpening(_Opening):
    def __init__(self, client: httpx.AsyncClient, request: httpx.Request) -> None:
        self._client = client
        self._request = request
        self._response: _HttpxResponse | None = None

    async def __aenter__(self) -> HttpResponse:
        try:
            raw = await self._client.send(self._request, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _httpx_failure(exc) from exc
        self._response = _HttpxResponse(raw)
        return self._response

    async def __aexit__(self, *exc_info: object) -> None:
        if self._response is not None:
            await self._response.raw.aclose()


class _HttpxResponse(HttpResponse):
    def __init__(self, raw: httpx.Response) -> None:
        self.raw = raw
        self.status = raw.status_code
        self.headers = raw.headers
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.raw.aiter_bytes():
                yield chunk
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _httpx_failure(exc) from exc
        self._done = True

    @property
    def complete(self) -> bool:
        return self._done


def _httpx_failure(exc: Exception) -> TransportError:
    message = str(exc) or type(exc).__name__
    permanent = getattr(exc, "permanent", None)
    if permanent is not None and isinstance(exc, httpx.ConnectError):
        # A transport that refuses for good (the workbench's SSRF guard) says so itself.
        return TransportError(message, kind="connect", permanent=bool(permanent))
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return TransportError(message, kind="url", permanent=True)
    if isinstance(exc, httpx.ConnectTimeout):
        return TransportError(message, kind="connect_timeout")
    if isinstance(exc, httpx.ConnectError):
        return TransportError(message, kind="connect")
    if isinstance(exc, httpx.TimeoutException):
        return TransportError(message, kind="read_timeout")
    if isinstance(exc, httpx.DecodingError):
        return TransportError(message, kind="protocol", permanent=True)
    return TransportError(message, kind="lost")


def as_client(client: HttpClient | httpx.AsyncClient) -> HttpClient:
    return HttpxClient(client) if isinstance(client, httpx.AsyncClient) else client


__all__ = [
    "AiohttpClient",
    "ConnectGuard",
    "HttpClient",
    "HttpRequest",
    "HttpResponse",
    "HttpxClient",
    "RequestCheck",
    "TransportError",
    "as_client",
]
