"""Fuzzing the REST API from its OpenAPI spec (schemathesis) and the gateway's bodies (hypothesis):
whatever arrives, the answer is never a server error.

In-process through Django's test client, authenticated as alice with an API token (a bearer
token, so no CSRF). No network: names other than IP literals do not resolve.

Each REST operation gets schemathesis' coverage cases (deterministic: every boundary, enum value,
null, empty and missing optional of its parameters and body — these found the null-in-a-PATCH
500) with the real objects in the path, then a few random cases, valid and invalid, with real
path parameters half of the time. Everything is derandomized, so a failure is reproducible, and
one world of objects serves the whole module (each test's writes are rolled back after it).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from django.db import transaction
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_django import DjangoDbBlocker
from schemathesis.generation.modes import GenerationMode

from tests.security.conftest import World, build_world
from workbench.accounts import services as accounts
from workbench.accounts.models import Membership, Role
from workbench.api.api import api

pytestmark = pytest.mark.django_db

SCHEMA = schemathesis.openapi.from_dict(api.get_openapi_schema())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
FUZZ = settings(
    max_examples=4,
    deadline=None,
    database=None,  # the same examples every run: a failure here is reproducible
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return _real_getaddrinfo(host, *args, **{**kwargs, "flags": socket.AI_NUMERICHOST})
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, "no DNS in tests") from None

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="module")
def shared_world(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[World]:
    """The security tests' world, built once for this module inside a transaction that is
    rolled back at its end (like ``setUpTestData``): each test runs in a savepoint of it."""
    fast = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    with django_db_blocker.unblock(), fast:
        outer = transaction.atomic()
        outer.__enter__()
        try:
            people = {
                name: accounts.user_signup(
                    username=name, email=f"{name}@example.com", password="fuzz-passphrase-42"
                )
                for name in ("alice", "bob", "vera", "charlie")
            }
            workspace = accounts.workspace_create(owner=people["alice"], name="Acme")
            for name, role in (("bob", Role.MEMBER), ("vera", Role.VIEWER)):
                Membership.objects.create(workspace=workspace, user=people[name], role=role)
            yield build_world(workspace, **people)
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture(scope="module")
def client() -> Client:
    """One client for the module: each new one loads the middleware again (whitenoise scans the
    static files), which would cost more than the requests."""
    return Client(raise_request_exception=False)


def _send(client: Client, case: Any, token: str) -> Any:
    """Send a case through Django's test client, serialized as schemathesis would send it (an
    invalid case's body may be raw bytes, or not JSON at all)."""
    wire = case.as_transport_kwargs(base_url="http://testserver")
    path = wire["url"].removeprefix("http://testserver")
    extra: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    if wire.get("params"):
        extra["QUERY_STRING"] = urlencode(wire["params"], doseq=True)
    if "files" in wire:  # multipart: let the test client encode the form
        return client.post(path, case.body, **extra)
    body = json.dumps(wire["json"]) if "json" in wire else wire.get("data") or b""
    content_type = wire["headers"].get("Content-Type", "application/octet-stream")
    return client.generic(case.method.upper(), path, body, content_type, **extra)


def _assert_no_server_error(client: Client, case: Any, token: str) -> None:
    response = _send(client, case, token)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r}: "
        f"{response.status_code} {response.content[:300]!r}"
    )


@pytest.mark.parametrize("operation", OPERATIONS, ids=[o.label for o in OPERATIONS])
def test_it_never_answers_a_fuzzed_api_request_with_a_server_error(
    operation: Any, shared_world: World, client: Client
) -> None:
    world = shared_world
    real = {
        "ws": world.workspace.slug,
        "credential_id": world.credential.pk,
        "slug": world.pool.slug,
        "run_id": str(world.run.pk),
        "experiment_id": world.experiment.pk,
    }

    coverage = SCHEMA.iter_coverage_cases(
        operation,
        generation_modes=[GenerationMode.POSITIVE],
        generation_config=SCHEMA.config.generation_for(operation=operation),
    )
    for case in coverage:
        if isinstance(case.path_parameters, dict):
            case.path_parameters = {k: real.get(k, v) for k, v in case.path_parameters.items()}
        _assert_no_server_error(client, case, world.raw_token)

    modes = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

    @FUZZ
    @given(case=modes.flatmap(operation.as_strategy), use_real=st.booleans())
    def check(case: Any, use_real: bool) -> None:
        if use_real and isinstance(case.path_parameters, dict):
            case.path_parameters = {k: real.get(k, v) for k, v in case.path_parameters.items()}
        _assert_no_server_error(client, case, world.raw_token)

    check()


# The pool fields a PATCH may leave out but not null; quorum, deadline_s, budget_usd and judge
# may be null (that clears them).
NOT_NULL = ["name", "slug", "description", "mode", "rounds", "debate_judge", "system_prompt",
            "blind_mode", "members"]  # fmt: skip


@pytest.mark.parametrize("field", NOT_NULL)
def test_it_refuses_null_for_a_pool_field_in_a_patch_by_name(
    field: str, shared_world: World, client: Client
) -> None:
    world = shared_world
    url = f"/api/v1/workspaces/{world.workspace.slug}/pools/{world.pool.slug}"
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {world.raw_token}"}

    response = client.patch(url, json.dumps({field: None}), "application/json", **bearer)

    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "validation_error"
    assert [e["field"] for e in body["errors"]] == [field]
    assert "null" in body["errors"][0]["message"]
    assert client.get(url, **bearer).json()[field] is not None, "nothing was changed"


def test_it_clears_a_nullable_pool_field_with_null_in_a_patch(
    shared_world: World, client: Client
) -> None:
    world = shared_world
    url = f"/api/v1/workspaces/{world.workspace.slug}/pools/{world.pool.slug}"
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {world.raw_token}"}
    assert client.patch(url, '{"budget_usd": "1.5"}', "application/json", **bearer).json()[
        "budget_usd"
    ]

    response = client.patch(url, '{"budget_usd": null}', "application/json", **bearer)

    assert response.status_code == 200, response.content
    assert response.json()["budget_usd"] is None


# --- the gateway: /v1/models, /v1/chat/completions, /anthropic/v1/messages --------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
# Model names that parse but name nothing this token may call (a 404 after the whole body was
# read), or do not parse: a real one would start a run, which is not this test's business.
MODEL = st.sampled_from(["", " ", "nope", "fusion/none", "fusion/", "simulated/sim-fast", "a/b/c"])
CONTENT = (
    st.text(max_size=30)
    | st.lists(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]) | JSON})
        | st.fixed_dictionaries({"type": st.just("text"), "text": JSON}),
        max_size=3,
    )
    | JSON
)


def _message(roles: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={"role": st.sampled_from(roles) | JSON, "content": CONTENT, "name": JSON},
    )


OPENAI_ROLES = ["user", "system", "assistant", "tool", "developer"]
NUMBER = st.integers() | st.floats(allow_nan=False) | JSON
OPTIONS = {
    "stream": st.booleans() | JSON,
    "temperature": NUMBER,
    "max_tokens": NUMBER,
    "fallbacks": st.lists(st.text(max_size=10), max_size=7) | JSON,
}
CHAT_BODY = (
    st.fixed_dictionaries(
        {},
        optional={
            "model": MODEL | JSON,
            "messages": st.lists(_message(OPENAI_ROLES), max_size=3) | JSON,
            "stream_options": st.fixed_dictionaries({"include_usage": JSON}) | JSON,
            "max_completion_tokens": NUMBER,
            "n": JSON,
            "tools": JSON,
            **OPTIONS,
        },
    )
    | JSON
)
ANTHROPIC_BODY = (
    st.fixed_dictionaries(
        {},
        optional={
            "model": MODEL | JSON,
            "messages": st.lists(_message(["user", "assistant", "system"]), max_size=3) | JSON,
            "system": CONTENT,
            "stop_sequences": JSON,
            "metadata": JSON,
            **OPTIONS,
        },
    )
    | JSON
)
# The raw bytes of a body: JSON, or what only looks like it.
RAW = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
    JSON.map(lambda v: json.dumps(v).encode()),
)
GATEWAY = settings(FUZZ, max_examples=60)


@pytest.mark.parametrize(
    ("url", "bodies", "auth"),
    [
        ("/v1/chat/completions", CHAT_BODY, "HTTP_AUTHORIZATION"),
        ("/anthropic/v1/messages", ANTHROPIC_BODY, "HTTP_X_API_KEY"),
    ],
    ids=["openai", "anthropic"],
)
def test_it_never_answers_a_fuzzed_chat_body_with_a_server_error(
    url: str, bodies: st.SearchStrategy[Any], auth: str, shared_world: World, client: Client
) -> None:
    key = shared_world.raw_token if auth == "HTTP_X_API_KEY" else f"Bearer {shared_world.raw_token}"

    @GATEWAY
    @given(body=bodies.map(lambda v: json.dumps(v).encode()) | RAW)
    def check(body: bytes) -> None:
        response = client.generic("POST", url, body, "application/json", **{auth: key})
        assert response.status_code < 500, f"{body!r}: {response.status_code} {response.content!r}"
        assert response.status_code != 401  # the token was accepted: the fuzz reached the parser
        assert response["Content-Type"].startswith("application/json")
        assert "error" in response.json(), "the format's own error shape"

    check()


@settings(GATEWAY, max_examples=30)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    authorization=st.one_of(
        st.just("Bearer {token}"),
        st.sampled_from(["", "Bearer", "Bearer ", "Basic {token}", "bearer {token}x", "{token}"]),
        st.text(max_size=30).map(lambda t: f"Bearer {t}"),
    ),
    query=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_it_never_answers_a_fuzzed_models_request_with_a_server_error(
    method: str, authorization: str, query: dict[str, str], shared_world: World, client: Client
) -> None:
    header = authorization.format(token=shared_world.raw_token)
    try:
        header.encode("latin-1")
    except UnicodeEncodeError:
        return  # not a header any HTTP client could send
    response = client.generic(
        method, "/v1/models", QUERY_STRING=urlencode(query), HTTP_AUTHORIZATION=header
    )
    assert response.status_code < 500, (method, header, query, response.status_code)
    if method == "GET" and header == f"Bearer {shared_world.raw_token}":
        assert response.status_code == 200
        models = {row["id"] for row in response.json()["data"]}
        assert f"fusion/{shared_world.pool.slug}" in models
