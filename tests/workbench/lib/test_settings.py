"""Settings come from the environment; production refuses to start half-configured."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

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


def _load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """Import the settings module alone (no apps): where secrets are read and checked."""
    script = "from django.conf import settings; settings.FUSION_ENCRYPTION_KEYS"
    clean = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY and k not in PRODUCTION}
    clean.update(env, DJANGO_SETTINGS_MODULE="workbench.settings")
    return subprocess.run([sys.executable, "-c", script], env=clean, cwd=BASE_DIR,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


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
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0, s.DEBUG, "
        "s.SESSION_COOKIE_SAMESITE, s.CSRF_COOKIE_SAMESITE)"
    )
    result = _manage("shell", "-c", script, **PRODUCTION)
    last_line = result.stdout.strip().splitlines()[-1]
    assert last_line.split() == ["True", "True", "True", "True", "True", "False", "Lax", "Lax"]


def test_it_names_database_url_and_redis_url_when_they_are_unusable() -> None:
    """At start, naming the variable (dj_database_url's and redis-py's own errors do not);
    the helpers' cases are in test_env.py."""
    bad_db = "postgress://fusion:s3cret@db.internal/fusion"
    result = _manage("check", **{**PRODUCTION, "DATABASE_URL": bad_db})
    assert result.returncode != 0
    assert "DATABASE_URL is not a usable database URL" in result.stderr
    assert "s3cret" not in result.stderr  # the URL carries the password: never echoed
    result = _manage("check", **{**PRODUCTION, "REDIS_URL": "http://redis.internal:6379/0"})
    assert result.returncode != 0
    assert "REDIS_URL is not a usable Redis URL" in result.stderr


def test_it_checks_every_encryption_key_at_start() -> None:
    good = PRODUCTION["FUSION_ENCRYPTION_KEYS"]
    result = _manage("check", **{**PRODUCTION, "FUSION_ENCRYPTION_KEYS": f"{good},not-a-key"})
    assert result.returncode != 0
    assert "FUSION_ENCRYPTION_KEYS entry #2 is not a Fernet key" in result.stderr
    assert "not-a-key" not in result.stderr  # a key, even a broken one, is never echoed


def test_it_keeps_generated_secrets_private(tmp_path: Path) -> None:
    """Embedded: var/ and its key files are the owner's only, and a file left readable by
    others (copied, restored from a backup) is made private again at the next start."""
    var = tmp_path / "var"
    result = _load_settings(FUSION_VAR_DIR=str(var))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    for name in ("secret_key", "encryption_key"):
        assert stat.S_IMODE((var / name).stat().st_mode) == 0o600, name

    key = (var / "encryption_key").read_text()
    (var / "encryption_key").chmod(0o644)
    assert _load_settings(FUSION_VAR_DIR=str(var)).returncode == 0
    assert stat.S_IMODE((var / "encryption_key").stat().st_mode) == 0o600
    assert (var / "encryption_key").read_text() == key  # the same key, not a new one


def test_it_names_a_broken_key_file(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    (var / "encryption_key").write_text("truncated")
    result = _load_settings(FUSION_VAR_DIR=str(var))
    assert result.returncode != 0
    assert f"{var / 'encryption_key'} entry #1 is not a Fernet key" in result.stderr
