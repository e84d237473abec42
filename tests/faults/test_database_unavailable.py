"""The database gone for a moment: a clear 503 page or JSON, and nothing half-written; and text
the database refuses (a NUL on PostgreSQL): a 400, not a 500.

The outage is simulated in-process with an execute wrapper on the connection: every statement
(or only the n-th write) raises ``OperationalError`` as a dropped server connection would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import DataError, InterfaceError, OperationalError, connection
from django.test import Client

from tests.faults.outage import merge_pool_body
from tests.workbench.runs.helpers import simulated_pool
from workbench.accounts.models import User, Workspace
from workbench.lib.middleware import DATABASE_UNAVAILABLE, NUL_REFUSED
from workbench.pools.models import Pool, PoolMember
from workbench.tokens.services import token_create

pytestmark = pytest.mark.django_db


@contextmanager
def database_down(
    *, after_writes: int | None = None, error: type[Exception] = OperationalError
) -> Iterator[list[str]]:
    """Fail every statement, or every write after the first ``after_writes`` ones."""
    seen: list[str] = []

    def wrapper(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        is_write = sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        if after_writes is None or (is_write and len(seen) >= after_writes):
            raise error("server closed the connection unexpectedly")
        if is_write:
            seen.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(wrapper):
        yield seen


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_it_answers_a_page_with_a_clear_503(
    alice_client: Client, workspace: Workspace, error: type[Exception]
) -> None:
    with database_down(error=error):
        response = alice_client.get(f"/w/{workspace.slug}/pools/")

    assert response.status_code == 503
    assert response["Retry-After"]
    assert DATABASE_UNAVAILABLE in response.content.decode()
    assert response["Content-Type"].startswith("text/html")


def test_it_answers_the_api_with_a_503_in_its_error_shape(
    alice_client: Client, workspace: Workspace
) -> None:
    with database_down():
        response = alice_client.get(f"/api/v1/workspaces/{workspace.slug}/pools")

    assert response.status_code == 503
    assert response.json() == {
        "detail": DATABASE_UNAVAILABLE,
        "code": "database_unavailable",
        "errors": [],
    }


def test_it_answers_the_gateway_with_a_503_json_error(workspace: Workspace) -> None:
    with database_down():
        response = Client().post(
            "/v1/chat/completions",
            {"model": "x", "messages": [{"role": "user", "content": "hi"}]},
            content_type="application/json",
            HTTP_AUTHORIZATION="Bearer fw_not-checked-the-database-is-down",
        )

    assert response.status_code == 503
    assert response.json()["error"]["message"] == DATABASE_UNAVAILABLE


def test_it_leaves_nothing_half_written_when_the_database_drops_mid_write(
    alice_client: Client, alice: User, workspace: Workspace
) -> None:
    sim = simulated_pool(workspace, alice, ["sim-fast"]).members.get().credential
    pools, members = Pool.objects.count(), PoolMember.objects.count()
    body = merge_pool_body("Half pool", sim.pk)
    url = f"/api/v1/workspaces/{workspace.slug}/pools"

    with database_down(after_writes=1) as written:
        response = alice_client.post(url, body, content_type="application/json")

    assert response.status_code == 503
    assert written, "the outage should hit after the first write, not before any"
    assert (Pool.objects.count(), PoolMember.objects.count()) == (pools, members)
    # The same request succeeds once the database is back: the 503 was the outage's doing.
    assert alice_client.post(url, body, content_type="application/json").status_code == 201
    assert Pool.objects.count() == pools + 1


def test_it_still_answers_500_for_other_errors(alice: User, workspace: Workspace) -> None:
    """Only an unreachable database is a 503; a bug stays a bug."""
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    with database_down(error=RuntimeError):
        response = client.get(f"/w/{workspace.slug}/pools/")
    assert response.status_code == 500


@contextmanager
def postgres_refusing_nul() -> Iterator[list[str]]:
    """What psycopg does before any statement whose text parameters hold a NUL (PostgreSQL
    text cannot), whatever the test database is."""
    refused: list[str] = []

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, *args: Any) -> Any:
        if any(isinstance(p, str) and "\x00" in p for p in params or ()):
            refused.append(sql)
            raise DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return execute(sql, params, *args)

    with connection.execute_wrapper(wrapper):
        yield refused


def test_it_answers_400_for_text_with_a_nul_character(alice: User, workspace: Workspace) -> None:
    _, token = token_create(workspace=workspace, user=alice, name="nul")
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {token}")
    sim = simulated_pool(workspace, alice, ["sim-fast"]).members.get().credential
    pools = Pool.objects.count()

    with postgres_refusing_nul() as refused:
        listed = client.get(f"/api/v1/workspaces/{workspace.slug}/runs", {"author": "\x00"})
        created = client.post(
            f"/api/v1/workspaces/{workspace.slug}/pools",
            {"name": "nul\x00pool", "members": [{"credential_id": sim.pk, "model": "sim-fast"}]},
            content_type="application/json",
        )

    assert refused, "the NUL reached the database, as it does on PostgreSQL"
    for response in (listed, created):
        assert response.status_code == 400, response.content
        assert response.json() == {"detail": NUL_REFUSED, "code": "invalid_characters",
                                   "errors": []}  # fmt: skip
    assert Pool.objects.count() == pools
