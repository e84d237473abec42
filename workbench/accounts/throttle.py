"""Throttling of log-ins (against password guessing) and of password-reset requests
(against mail bombing a victim's inbox).

Events are counted in the cache (Redis) per account (user name or email) and per client
address over a fixed window that starts at the first event. Once either count reaches the
limit every further attempt is refused until the window ends; for log-ins that holds for the
right password too, so guessing costs the attacker a window per few tries. The app's log-in
and the admin's share the same counts.
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


def _keys(kind: str, account: str, ip: str) -> list[str]:
    # Hashed: names and emails are user input, and cache keys must stay short and plain.
    name = hashlib.sha256(account.strip().lower().encode()).hexdigest()[:32]
    return [f"{kind}:user:{name}", f"{kind}:ip:{ip}"]


def _blocked(keys: list[str], limit: int) -> bool:
    return any(int(count) >= limit for count in cache.get_many(keys).values())


def _count(keys: list[str], window_s: int) -> None:
    for key in keys:
        # add() only sets the window on the first event; incr() keeps the expiry it has.
        cache.add(key, 0, timeout=window_s)
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls: start a new window
            cache.set(key, 1, timeout=window_s)


def _wait_words(window_s: int) -> str:
    minutes = max(1, round(window_s / 60))
    return f"Wait {minutes} minute{'s' if minutes != 1 else ''} and try again"


def login_blocked(*, username: str, ip: str) -> bool:
    return _blocked(_keys("login-fail", username, ip), settings.LOGIN_THROTTLE_ATTEMPTS)


def login_failed(*, username: str, ip: str) -> None:
    _count(_keys("login-fail", username, ip), settings.LOGIN_THROTTLE_WINDOW_S)


def login_succeeded(*, username: str) -> None:
    """Forget the username's failures; the address's stay, so one account of an attacker's own
    cannot be used to reset the count between guesses at others."""
    cache.delete(_keys("login-fail", username, "")[0])


def blocked_message() -> str:
    return (
        "Too many failed log-in attempts for this account or from your network. "
        f"{_wait_words(settings.LOGIN_THROTTLE_WINDOW_S)}, or reset your password."
    )


def reset_blocked(*, email: str, ip: str) -> bool:
    return _blocked(_keys("reset", email, ip), settings.PASSWORD_RESET_THROTTLE_ATTEMPTS)


def reset_requested(*, email: str, ip: str) -> None:
    """Count a reset request, whether or not an account has the email: the count must not
    tell an asker which addresses exist."""
    _count(_keys("reset", email, ip), settings.PASSWORD_RESET_THROTTLE_WINDOW_S)


def reset_blocked_message() -> str:
    return (
        "Too many password-reset requests for this address or from your network. "
        f"{_wait_words(settings.PASSWORD_RESET_THROTTLE_WINDOW_S)}; "
        "the links already sent stay valid."
    )
