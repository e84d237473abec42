"""The production shape on disk: compose.yaml, the Docker build context and the containers'
health-check command."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator

import pytest
import yaml

from workbench.lib import healthcheck
from workbench.lib.stack import BASE_DIR

COMPOSE = yaml.safe_load((BASE_DIR / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
# Services with no health check, and why: the one-shot migrate (web and worker wait for it to
# complete) and beat (its container's only process; the restart policy covers it dying).
NO_HEALTHCHECK = {"migrate", "beat"}


def web_healthcheck_argv() -> list[str]:
    test = SERVICES["web"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return list(test[1:])


def test_it_runs_the_production_services_with_health_checks() -> None:
    assert set(SERVICES) == {"migrate", "web", "worker", "beat", "postgres", "redis"}
    for name, service in SERVICES.items():
        if name in NO_HEALTHCHECK:
            assert "healthcheck" not in service, name
        else:
            check = service["healthcheck"]
            assert check["test"] and check["interval"], name


def test_it_lets_the_worker_scale() -> None:
    worker = SERVICES["worker"]
    # A fixed container name or a published port would make `--scale worker=N` fail.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["command"].split()[:4] == ["celery", "-A", "workbench", "worker"]
    # Each replica answers its own health check by its own (container) host name.
    assert "-n worker@%h" in worker["command"]
    assert "worker@$$HOSTNAME" in " ".join(worker["healthcheck"]["test"])


def test_it_checks_web_without_asking_the_workers() -> None:
    argv = web_healthcheck_argv()
    assert argv[:3] == ["python", "-m", "workbench.lib.healthcheck"]
    assert argv[argv.index("--scope") + 1] == "web"
    # Web and worker wait for the database schema, not only for the servers.
    for name in ("web", "worker"):
        condition = SERVICES[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def _dockerignore_patterns() -> list[str]:
    lines = (BASE_DIR / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's matching: Go's filepath.Match per path, plus ``**`` for any directories."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def docker_ignores(path: str, patterns: list[str]) -> bool:
    """Whether ``docker build`` leaves ``path`` out of the context: a pattern excludes the
    path or any directory above it; later ``!`` patterns take exclusions back."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _pattern_regex(raw.removeprefix("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        "var/secret_key",
        "var/encryption_key",
        "var/demo_password",
        "var/db.sqlite3",
        "var/redis.sock",
        ".env",
        ".env.production",
        ".venv/bin/python",
        ".git/HEAD",
        "workbench/__pycache__/settings.cpython-311.pyc",
    ],
)
def test_it_keeps_local_state_and_secrets_out_of_the_image(path: str) -> None:
    assert docker_ignores(path, _dockerignore_patterns())


@pytest.mark.parametrize(
    "path",
    [
        "manage.py",
        "pyproject.toml",
        "README.md",
        "workbench/settings.py",
        "workbench/lib/healthcheck.py",
        "fusion/engine.py",
        "templates/base.html",
        "static/vendor/htmx/htmx.min.js",
    ],
)
def test_it_keeps_what_the_image_needs(path: str) -> None:
    assert (BASE_DIR / path).exists(), path  # the list above must name real files
    assert not docker_ignores(path, _dockerignore_patterns())


def test_it_matches_like_docker() -> None:
    """The matcher itself, on the cases the assertions above depend on."""
    assert docker_ignores("var/x/y", ["var/"])
    assert not docker_ignores("static/vendor.js", ["var/"])
    assert docker_ignores("a/b/__pycache__/c.pyc", ["**/__pycache__/"])
    assert not docker_ignores(".env.example", [".env*", "!.env.example"])


class _Recorder(http.server.BaseHTTPRequestHandler):
    status = 200
    seen: list[tuple[str, dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, dict(self.headers)))
        body = b'{"status": "ok"}' if self.status == 200 else b'{"failing": ["database"]}'
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"seen": [], "status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/healthz", handler
    finally:
        server.shutdown()
        server.server_close()


def test_it_asks_like_the_proxy_would(
    recorder: tuple[str, type[_Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = recorder
    monkeypatch.setenv("ALLOWED_HOSTS", "fusion.example.com,other.example.com")
    assert healthcheck.main([*web_healthcheck_argv()[3:], "--url", url]) == 0
    path, headers = handler.seen[-1]
    assert path == "/healthz?scope=web"
    assert headers["Host"] == "fusion.example.com"
    assert headers["X-Forwarded-Proto"] == "https"


def test_it_fails_when_web_is_unhealthy_or_silent(
    recorder: tuple[str, type[_Recorder]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, handler = recorder
    handler.status = 503
    assert healthcheck.main(["--url", url]) == 1
    assert "503" in capsys.readouterr().out
    handler.status = 301  # a redirect is not health either
    assert healthcheck.main(["--url", url]) == 1
    # Port 9 (discard): nothing listens there.
    assert healthcheck.main(["--url", "http://127.0.0.1:9/healthz", "--timeout", "2"]) == 1
    assert "no answer" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        ("fusion.example.com", "fusion.example.com"),
        (" .example.com, x.org", "example.com"),
        ("*", "localhost"),
        ("", "localhost"),
        (None, "localhost"),
    ],
)
def test_it_picks_a_host_django_accepts(allowed: str | None, host: str) -> None:
    assert healthcheck.health_host(allowed) == host
