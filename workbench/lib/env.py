"""Typed readers for settings from the environment.

Each raises ``ImproperlyConfigured`` naming the variable when its value is unusable, so a
misconfigured deployment fails at start with a message that says what to fix.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ImproperlyConfigured(f"{name} must be set")
        return default
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_database_url(name: str, *, conn_max_age: int) -> dict[str, Any]:
    """Django's ``DATABASES["default"]`` from a URL such as ``postgres://u:p@host:5432/db``.

    dj_database_url's own errors do not say which variable held the URL; the URL itself is
    never echoed, since it usually carries the password.
    """
    import dj_database_url

    raw = env_str(name)
    try:
        config = dict(dj_database_url.parse(raw, conn_max_age=conn_max_age))
    except Exception as exc:  # UnknownSchemeError, ParseError, ValueError: all "unusable"
        reason = str(exc).split(". Did you forget")[0]  # drop the library's long scheme list
        raise ImproperlyConfigured(
            f"{name} is not a usable database URL ({reason}); "
            "expected e.g. postgres://user:password@host:5432/fusion or sqlite:////path/db"
        ) from None
    if not config.get("NAME") or config["NAME"] == ":memory:":
        # An in-memory SQLite database would not be shared by web and worker processes.
        raise ImproperlyConfigured(f"{name} names no database (the path after the host)")
    return config


_REDIS_SCHEMES = ("redis", "rediss", "unix")


def env_redis_url(name: str, default: str) -> str:
    """A Redis URL (``redis://``, ``rediss://`` or ``unix://``), checked now rather than at
    the first cache or broker call, which would fail far from the cause."""
    raw = env_str(name, default)
    problem = _redis_url_problem(raw)
    if problem:
        raise ImproperlyConfigured(
            f"{name} is not a usable Redis URL ({problem}); expected e.g. "
            "redis://host:6379/0, rediss://host:6380/0 or unix:///path/redis.sock"
        )
    return raw


def _redis_url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a port that is not a number
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in _REDIS_SCHEMES:
        return f"the scheme must be one of {', '.join(s + '://' for s in _REDIS_SCHEMES)}"
    if parts.scheme == "unix":
        return None if parts.path else "no socket path"
    if not parts.hostname:
        return "no host"
    if port is not None and not 0 < port < 65536:
        return "port out of range"
    db = parts.path.strip("/")
    if db and not db.isdigit():
        return f"the database must be a number, not {db!r}"
    return None


def invalid_fernet_key_position(keys: list[str] | tuple[str, ...]) -> int | None:
    """The index of the first entry that is not a Fernet key (32 url-safe base64 bytes)."""
    from cryptography.fernet import Fernet

    for position, key in enumerate(keys):
        try:
            Fernet(key.encode())
        except ValueError:
            return position
    return None


def fernet_keys_error(name: str, keys: list[str] | tuple[str, ...]) -> str | None:
    """What is wrong with a list of Fernet keys, naming where it came from, never the key."""
    if not keys:
        return f"{name} is empty"
    bad = invalid_fernet_key_position(keys)
    if bad is None:
        return None
    return (
        f"{name} entry #{bad + 1} is not a Fernet key (32 url-safe base64-encoded bytes, "
        "as `Fernet.generate_key()` makes)"
    )


def env_fernet_keys(name: str) -> list[str]:
    """Comma-separated Fernet keys, newest first; empty when unset. A malformed entry stops
    the start here instead of at the first encryption."""
    keys = env_list(name)
    error = fernet_keys_error(name, keys) if keys else None
    if error:
        raise ImproperlyConfigured(error)
    return keys


def secret_file(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """Read a generated secret, creating it with mode 0600 on first use; (value, created).

    A file that is group- or world-accessible (copied around, restored from a backup) is
    tightened back to 0600; when that is not allowed the start stops with what to run.
    """
    created = False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            try:
                path.chmod(0o600)
            except OSError:
                raise ImproperlyConfigured(
                    f"{path} is readable by others (mode {mode:04o}) and cannot be made "
                    f"private: run `chmod 600 {path}` as its owner"
                ) from None
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
        created = True
    return path.read_text().strip(), created
