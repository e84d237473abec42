"""Taking a service away from a daphne of the test's own: the database (through a TCP proxy in
front of PostgreSQL, or a symlink to the SQLite file) and, for any test, the daphne itself."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from workbench.lib.stack import BASE_DIR, free_port, stack_env


def merge_pool_body(name: str, credential_id: int) -> dict[str, Any]:
    """The API body of a pool that takes three rows (the pool, two members): a write an outage
    can interrupt half-way."""
    return {
        "name": name,
        "mode": "merge",
        "members": [
            {"credential_id": credential_id, "model": "sim-fast"},
            {"credential_id": credential_id, "model": "sim-slow"},
        ],
        "judge": {"credential_id": credential_id, "model": "sim-judge"},
    }


def start_daphne(log_dir: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """A daphne on a free port with this process's settings (and ``env`` over them)."""
    port = free_port()
    log = log_dir / "daphne.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "workbench.asgi:application"],
        cwd=BASE_DIR, env=stack_env(**env), stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text(errors="replace")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return process, f"http://127.0.0.1:{port}"
        assert time.monotonic() < deadline, "daphne did not start"
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class TcpProxy:
    """127.0.0.1:<port> forwarded to ``target``, one pair of threads per connection.

    ``cut()`` drops every connection and answers new ones by hanging up, as a database server
    that went away does; ``restore()`` forwards again. ``drop_when_sent(marker)`` drops the
    connection whose client sends ``marker`` (say, the start of an INSERT) before it arrives.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.down = False
        self.dropped = threading.Event()
        self._marker: bytes | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.down = True
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def restore(self) -> None:
        self.down = False

    def drop_when_sent(self, marker: bytes) -> None:
        self.dropped.clear()
        self._marker = marker

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        tail = b""  # the end of the last chunk, for a marker split across two
        try:
            while chunk := source.recv(65536):
                marker = self._marker
                if from_client and marker is not None and marker in tail + chunk:
                    self._marker = None
                    self._drop(source, sink)
                    self.dropped.set()
                    return
                tail = chunk[-len(marker) :] if marker else b""
                sink.sendall(chunk)
        except OSError:
            pass
        self._drop(source, sink)

    def _drop(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._sockets.discard(sock)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


class SqliteLink:
    """A symlink to the SQLite database that can be pointed at a directory instead: whoever opens
    the database through it then gets "unable to open database file". Processes that opened the
    file by its real name (this one) keep it."""

    def __init__(self, database: Path, folder: Path) -> None:
        self.database = database
        self.path = folder / "db-link.sqlite3"
        self._nowhere = folder / "no-database-here"
        self._nowhere.mkdir()
        os.symlink(database, self.path)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def cut(self) -> None:
        self._point_at(self._nowhere)

    def restore(self) -> None:
        self._point_at(self.database)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)

    def _point_at(self, target: Path) -> None:
        # Atomically, so that no connection ever sees the link missing (SQLite would create
        # an empty database there).
        fresh = self.path.with_suffix(".new")
        fresh.unlink(missing_ok=True)
        os.symlink(target, fresh)
        os.replace(fresh, self.path)
