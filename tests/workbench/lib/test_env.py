"""The typed environment readers settings.py is built from: an unusable value raises
ImproperlyConfigured naming the variable (test_settings.py proves the wiring at start)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from workbench.lib.env import env_database_url, env_fernet_keys, env_redis_url, secret_file


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgress://fusion:s3cret@db.internal/fusion", "Scheme 'postgress://' is unknown"),
        ("postgres://fusion:s3cret@db.internal:port/fusion", "not a valid url"),
        ("postgres://fusion:s3cret@db.internal:5432", "DATABASE_URL names no database"),
        ("sqlite://", "DATABASE_URL names no database"),
    ],
)
def test_it_names_database_url_when_it_is_unusable(
    url: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ImproperlyConfigured) as caught:
        env_database_url("DATABASE_URL", conn_max_age=0)
    assert str(caught.value).startswith("DATABASE_URL ")
    assert reason in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert "Following schemes" not in str(caught.value)  # not the library's whole list


def test_it_reads_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://fusion:pw@db.internal:5433/fusion")
    config = env_database_url("DATABASE_URL", conn_max_age=60)
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", 5433, "fusion")
    assert config["CONN_MAX_AGE"] == 60


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://redis.internal:6379/0", "the scheme must be one of redis://, rediss://"),
        ("redis.internal:6379", "the scheme must be one of"),
        ("redis://:6379/0", "no host"),
        ("redis://redis.internal:six/0", "Port could not be cast"),
        ("redis://redis.internal:70000/0", "out of range"),
        ("redis://redis.internal:6379/cache", "the database must be a number"),
        ("unix://", "no socket path"),
    ],
)
def test_it_names_redis_url_when_it_is_unusable(
    url: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(ImproperlyConfigured) as caught:
        env_redis_url("REDIS_URL", "redis://localhost:6379/0")
    assert str(caught.value).startswith("REDIS_URL is not a usable Redis URL")
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://redis:6379/0",
        "redis://:password@redis.internal:6380",
        "rediss://redis.internal/3",
        "unix:///var/run/redis.sock",
    ],
)
def test_it_accepts_the_redis_urls_it_documents(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    assert env_redis_url("REDIS_URL", "unused") == url


def test_it_names_the_bad_encryption_key_by_position(monkeypatch: pytest.MonkeyPatch) -> None:
    good = Fernet.generate_key().decode()
    monkeypatch.setenv("FUSION_ENCRYPTION_KEYS", f"{good}, {good[:-4]}")
    with pytest.raises(ImproperlyConfigured) as caught:
        env_fernet_keys("FUSION_ENCRYPTION_KEYS")
    assert "FUSION_ENCRYPTION_KEYS entry #2 is not a Fernet key" in str(caught.value)
    assert good[:-4] not in str(caught.value)
    monkeypatch.setenv("FUSION_ENCRYPTION_KEYS", f"{good},{Fernet.generate_key().decode()}")
    assert len(env_fernet_keys("FUSION_ENCRYPTION_KEYS")) == 2
    monkeypatch.delenv("FUSION_ENCRYPTION_KEYS")
    assert env_fernet_keys("FUSION_ENCRYPTION_KEYS") == []


def test_it_creates_a_secret_file_private_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    value, created = secret_file(path, lambda: "first")
    assert (value, created) == ("first", True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_file(path, lambda: "second") == ("first", False)


def test_it_makes_a_loose_secret_file_private_again(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("kept\n")
    path.chmod(0o644)
    assert secret_file(path, lambda: "new") == ("kept", False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_it_refuses_a_loose_secret_file_it_cannot_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret"
    path.write_text("kept")
    path.chmod(0o640)

    def not_yours(self: Path, mode: int) -> None:
        raise PermissionError("not the owner")

    monkeypatch.setattr(Path, "chmod", not_yours)
    with pytest.raises(ImproperlyConfigured) as caught:
        secret_file(path, lambda: "new")
    assert f"{path} is readable by others (mode 0640)" in str(caught.value)
    assert f"chmod 600 {path}" in str(caught.value)
