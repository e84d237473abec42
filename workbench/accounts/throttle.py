"""Log-in throttling against password guessing.

Failures are counted in the cache (Redis) per username and per client address over a fixed
window that starts at the first failure. Once either count reaches
``LOGIN_THROTTLE_ATTEMPTS`` every further attempt is refused, right password or not, until the
window ends: guessing then costs the attacker a window per few tries.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The address that connected to us, or behind the TLS proxy, the one it saw.

    Only the right-most X-Forwarded-For entry is trusted: the proxy appends it; anything to its
    left was sent by the client and could be forged to dodge the throttle.
    """
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _keys(username: str, ip: str) -> list[str]:
    # Hashed: usernames are user input, and cache keys must stay short and plain.
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login-fail:user:{name}", f"login-fail:ip:{ip}"]


def login_blocked(*, username: str, ip: str) -> bool:
    counts = cache.get_many(_keys(username, ip))
    return any(int(count) >= settings.LOGIN_THROTTLE_ATTEMPTS for count in counts.values())


def login_failed(*, username: str, ip: str) -> None:
    for key in _keys(username, ip):
        # add() only sets the window on the first failure; incr() keeps the expiry it has.
        cache.add(key, 0, timeout=settings.LOGIN_THROTTLE_WINDOW_S)
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls: start a new window
            cache.set(key, 1, timeout=settings.LOGIN_THROTTLE_WINDOW_S)


def login_succeeded(*, username: str) -> None:
    """Forget the username's failures; the address's stay, so one account of an attacker's own
    cannot be used to reset the count between guesses at others."""
    cache.delete(_keys(username, "")[0])


def blocked_message() -> str:
    minutes = max(1, round(settings.LOGIN_THROTTLE_WINDOW_S / 60))
    return (
        "Too many failed log-in attempts for this account or from your network. "
        f"Wait {minutes} minute{'s' if minutes != 1 else ''} and try again, "
        "or reset your password."
    )
