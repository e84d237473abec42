"""Loaded first (``-p tests._services`` in pyproject), before Django reads its settings.

It makes ``make test`` self-contained: with ``DATABASE_URL`` / ``REDIS_URL`` set (CI) the tests
use those real servers; otherwise SQLite and an embedded Redis started here.
"""

from __future__ import annotations

import atexit
import os
import tempfile
from pathlib import Path

_TEST_VAR = Path(tempfile.mkdtemp(prefix="fusion-test-"))

os.environ.setdefault("FUSION_VAR_DIR", str(_TEST_VAR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
# Fixed, test-only secrets so a production-shaped (DATABASE_URL) run has what it needs.
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20)
os.environ.setdefault("FUSION_ENCRYPTION_KEYS", "Z2VuZXJhdGVkLWZvci10ZXN0cy1vbmx5LTMyYnl0ZXM=")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver,[::1]")
os.environ.setdefault("FUSION_PRIVATE_HOSTS_ALLOWED", "127.0.0.0/8,::1,localhost")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
os.environ.setdefault("BEHIND_TLS_PROXY", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Serve static files from static/ (no collectstatic) even in a production-shaped (CI) run.
os.environ.setdefault("FUSION_STATIC_MANIFEST", "false")

# Set by the first process that started an embedded Redis: parallel (xdist) test processes
# inherit its environment, and each starts a Redis of its own rather than sharing it (one
# process's Celery worker would otherwise take another's runs, whose rows it cannot see).
_EMBEDDED_MARK = "FUSION_TEST_EMBEDDED_REDIS"

if os.environ.get(_EMBEDDED_MARK) or not os.environ.get("REDIS_URL"):
    from workbench.lib.embedded_redis import start_embedded_redis

    os.environ[_EMBEDDED_MARK] = "1"

    _socket = _TEST_VAR / "redis.sock"
    _redis = start_embedded_redis(_socket, log_path=_TEST_VAR / "redis.log")
    atexit.register(_redis.kill)
    os.environ["REDIS_URL"] = f"unix://{_socket}"
elif os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel test processes share the one Redis server (CI): each gets a database of its
    # own, or one process's Celery worker would take another's runs (whose rows its database
    # does not have). gw0 keeps the given database, gw1 the next one, and so on.
    from urllib.parse import urlsplit, urlunsplit

    _url = urlsplit(os.environ["REDIS_URL"])
    _base = int(_url.path.strip("/") or 0)
    _worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    os.environ["REDIS_URL"] = urlunsplit(_url._replace(path=f"/{(_base + _worker) % 16}"))
