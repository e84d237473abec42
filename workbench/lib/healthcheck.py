"""The containers' health check: ``python -m workbench.lib.healthcheck [--scope web|all]``.

It asks the daphne in the same container for ``/healthz`` the way the TLS proxy would: with a
``Host`` from ``ALLOWED_HOSTS`` (any other host gets 400 DisallowedHost) and
``X-Forwarded-Proto: https`` (else ``SECURE_SSL_REDIRECT`` answers 301; ``/healthz`` is exempt
from the redirect as well, for load balancers that probe over plain HTTP). Exit status 0 when
healthy, 1 otherwise, with the answer on stdout for ``docker inspect``.

It does not set up Django: it runs every 30 s in every web container and needs only the
environment the container already has.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit


def health_host(allowed_hosts: str | None) -> str:
    """A host name Django will accept, from the comma-separated ``ALLOWED_HOSTS``."""
    for entry in (allowed_hosts or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        if entry == "*":
            return "localhost"
        # ".example.com" allows example.com and every subdomain of it.
        return entry.removeprefix(".")
    return "localhost"


def health_headers(environ: Mapping[str, str]) -> dict[str, str]:
    """The headers of the health request, as the TLS proxy in front of web would send them."""
    return {
        "Host": health_host(environ.get("ALLOWED_HOSTS")),
        "X-Forwarded-Proto": "https",
        "Accept": "application/json",
    }


def probe(url: str, headers: dict[str, str], *, timeout: float) -> tuple[int, str]:
    """GET ``url`` with ``headers``; (status, body), or (0, the error) when nothing answers."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                            timeout=timeout)  # fmt: skip
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(2000).decode(errors="replace")
    except OSError as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scope",
        choices=["web", "all"],
        default="web",
        help="web: this process, its database and Redis (default); all: a worker too",
    )
    parser.add_argument("--url", help="default: http://127.0.0.1:$PORT/healthz (PORT 8000)")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    base = args.url or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"
    url = f"{base}{'&' if '?' in base else '?'}scope={args.scope}"
    status, body = probe(url, health_headers(os.environ), timeout=args.timeout)
    print(f"{status or 'no answer'} {body}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
