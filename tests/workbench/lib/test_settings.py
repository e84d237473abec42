"""Settings come from the environment; production refuses to start half-configured."""

from __future__ import annotations

import os
import subprocess
import sys

from workbench.lib.stack import BASE_DIR

PRODUCTION = {
    "SECRET_KEY": "a-long-random-production-secret-key-for-this-test-only-0123456789",
    "FUSION_ENCRYPTION_KEYS": "Z2VuZXJhdGVkLWZvci10ZXN0cy1vbmx5LTMyYnl0ZXM=",
    "DATABASE_URL": "postgres://fusion@db.internal:5432/fusion",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "ALLOWED_HOSTS": "fusion.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://fusion.example.com",
}
# Variables the test suite sets for itself that a real deployment would not.
_TEST_ONLY = {
    "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "BEHIND_TLS_PROXY",
    "FUSION_PRIVATE_HOSTS_ALLOWED", "FUSION_STATIC_MANIFEST", "FUSION_EMBEDDED", "DEBUG",
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # set by the browser fixtures for Playwright's sync API
}  # fmt: skip


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY and k not in PRODUCTION}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], env=clean, cwd=BASE_DIR,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_it_passes_the_deployment_checklist_with_production_settings() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_refuses_to_start_without_encryption_keys() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "FUSION_ENCRYPTION_KEYS"}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "FUSION_ENCRYPTION_KEYS must be set" in result.stderr


def test_it_refuses_to_start_without_a_secret_key() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_it_names_the_variable_whose_value_is_unusable() -> None:
    result = _manage("check", **PRODUCTION, DEBUG="perhaps")
    assert result.returncode != 0
    assert "DEBUG must be true or false, not 'perhaps'" in result.stderr
    result = _manage("check", **PRODUCTION, FUSION_REAPER_STALE_S="soon")
    assert "FUSION_REAPER_STALE_S must be a whole number" in result.stderr


def test_it_sets_secure_cookie_flags_in_production() -> None:
    script = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0, s.DEBUG)"
    )
    result = _manage("shell", "-c", script, **PRODUCTION)
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.split() == ["True", "True", "True", "True", "True", "False"]
