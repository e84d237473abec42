"""The database gone for a moment, under a real daphne: a clear 503 (an HTML page, the API's JSON,
the gateway's JSON), nothing half-written, and service back as soon as the database is.

The daphne is this test's own, reaching the database through something the test can cut: a TCP
proxy in front of PostgreSQL (CI), or a symlink to the SQLite file (the embedded default), which
the test points at a directory. This process keeps its own connection, to look at what was
written. ``test_database_unavailable.py`` has the in-process version of each case.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.faults.outage import (
    SqliteLink,
    TcpProxy,
    merge_pool_body,
    start_daphne,
    stop_process,
)
from tests.workbench.runs.helpers import session_headers, simulated_pool
from workbench.accounts.models import User, Workspace
from workbench.lib.middleware import DATABASE_UNAVAILABLE
from workbench.lib.stack import database_url
from workbench.pools.models import Pool, PoolMember
from workbench.tokens.services import token_create

pytestmark = pytest.mark.slow

ON_POSTGRES = connection.vendor == "postgresql"


@dataclass
class Outage:
    url: str
    link: TcpProxy | SqliteLink
    page_headers: dict[str, str]
    api_headers: dict[str, str]
    workspace: Workspace
    pool_body: dict[str, object]

    def get(self, path: str, headers: dict[str, str]) -> httpx.Response:
        return httpx.get(self.url + path, headers=headers, timeout=30)

    def create_pool(self) -> httpx.Response:
        return httpx.post(
            f"{self.url}/api/v1/workspaces/{self.workspace.slug}/pools",
            json=self.pool_body, headers=self.api_headers, timeout=30,
        )  # fmt: skip


@pytest.fixture
def outage(transactional_db: None, alice: User, workspace: Workspace) -> Iterator[Outage]:
    folder = Path(tempfile.mkdtemp(prefix="fw-db-"))
    link: TcpProxy | SqliteLink
    if ON_POSTGRES:
        settings = connection.settings_dict
        link = TcpProxy((settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)))
        host = f"{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}"
        url = database_url().replace(f"@{host}/", f"@127.0.0.1:{link.port}/")
        assert str(link.port) in url, url
    else:
        link = SqliteLink(Path(connection.settings_dict["NAME"]), folder)
        url = link.url
    daphne, base = start_daphne(folder, DATABASE_URL=url)
    try:
        sim = simulated_pool(workspace, alice, ["sim-fast"]).members.get().credential
        _, token = token_create(workspace=workspace, user=alice, name="outage")
        yield Outage(
            url=base,
            link=link,
            page_headers=session_headers(alice, base),
            api_headers={"Authorization": f"Bearer {token}"},
            workspace=workspace,
            pool_body=merge_pool_body("Outage pool", sim.pk),
        )
    finally:
        link.restore()
        stop_process(daphne)
        link.close()
        shutil.rmtree(folder, ignore_errors=True)


def _written() -> tuple[int, int]:
    return Pool.objects.filter(name="Outage pool").count(), PoolMember.objects.count()


def test_it_answers_503_while_the_database_is_down_and_serves_again_after(
    outage: Outage,
) -> None:
    pools_page = f"/w/{outage.workspace.slug}/pools/"
    pools_api = f"/api/v1/workspaces/{outage.workspace.slug}/pools"
    assert outage.get(pools_page, outage.page_headers).status_code == 200
    assert outage.get(pools_api, outage.api_headers).status_code == 200
    before = _written()

    outage.link.cut()
    page = outage.get(pools_page, outage.page_headers)
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert DATABASE_UNAVAILABLE in page.text and page.headers["retry-after"]
    api = outage.get(pools_api, outage.api_headers)
    assert api.status_code == 503 and api.headers["retry-after"]
    assert api.json() == {"detail": DATABASE_UNAVAILABLE, "code": "database_unavailable",
                          "errors": []}  # fmt: skip
    gateway = outage.get("/v1/models", outage.api_headers)
    assert gateway.status_code == 503
    assert gateway.json()["error"]["message"] == DATABASE_UNAVAILABLE
    created = outage.create_pool()
    assert created.status_code == 503, created.text
    outage.link.restore()

    assert _written() == before, "the pool created during the outage left nothing behind"
    assert outage.get(pools_page, outage.page_headers).status_code == 200
    created = outage.create_pool()
    assert created.status_code == 201, created.text
    assert _written() == (1, before[1] + 2)


@pytest.mark.skipif(not ON_POSTGRES, reason="a connection can only be cut mid-write over TCP")
def test_it_leaves_nothing_half_written_when_the_database_drops_mid_write(
    outage: Outage,
) -> None:
    assert isinstance(outage.link, TcpProxy)
    assert outage.get(f"/api/v1/workspaces/{outage.workspace.slug}/pools", outage.api_headers)
    before = _written()

    # The pool row is inserted; the connection dies as its members are sent.
    outage.link.drop_when_sent(b'INSERT INTO "pools_poolmember"')
    created = outage.create_pool()

    assert outage.link.dropped.is_set(), "the connection was cut mid-write, as planned"
    assert created.status_code == 503, created.text
    assert created.json()["code"] == "database_unavailable"
    assert _written() == before, "the pool row went with its transaction"
    created = outage.create_pool()
    assert created.status_code == 201, created.text
    assert _written() == (1, before[1] + 2)
