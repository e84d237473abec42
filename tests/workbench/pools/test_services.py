"""Pool services: validation with every problem named, permissions, clone, the frozen copy."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied

from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential
from workbench.keys.services import credential_create, credential_delete
from workbench.lib.errors import ServiceError
from workbench.pools import services
from workbench.pools.inputs import JudgeInput, MemberInput, PoolValidationError
from workbench.pools.models import Pool

from .conftest import pool_input

pytestmark = pytest.mark.django_db


def _errors(call: Callable[[], object]) -> dict[str, list[str]]:
    with pytest.raises(PoolValidationError) as caught:
        call()
    return caught.value.errors


def test_it_creates_a_pool_with_a_slug_from_its_name(make_pool: Callable[..., Pool]) -> None:
    first, second = make_pool(), make_pool()
    assert (first.slug, second.slug) == ("trio", "trio-2")
    assert [m.model for m in first.members.all()] == ["sim-fast", "sim-balanced", "sim-slow"]
    assert first.judge_model == "sim-judge"


def test_it_refuses_a_taken_or_reserved_slug(make_pool: Callable[..., Pool]) -> None:
    make_pool(slug="mine")
    assert "slug" in _errors(lambda: make_pool(slug="mine"))
    assert "slug" in _errors(lambda: make_pool(slug="new"))
    assert make_pool(name="New").slug == "new-2"


def test_it_names_every_problem_at_once(workspace: Workspace, alice: User, sim: Credential) -> None:
    data = pool_input(
        sim,
        name="",
        mode="merge",
        judge=None,
        quorum=5,
        deadline_s=0,
        budget_usd=Decimal("-1"),
        members=[
            MemberInput(credential_id=sim.pk, model="sim-fast", temperature=3.5),
            MemberInput(credential_id=sim.pk, model="not-listed", max_tokens=0),
            MemberInput(credential_id=None, model=""),
        ],
    )
    errors = _errors(lambda: services.pool_create(workspace=workspace, user=alice, data=data))
    assert set(errors) == {
        "name",
        "judge",
        "quorum",
        "deadline_s",
        "budget_usd",
        "members.0.temperature",
        "members.1.model",
        "members.1.max_tokens",
        "members.2.credential",
        "members.2.model",
    }
    assert "Merge needs a judge" in errors["judge"][0]
    assert "not in the catalog of Sim" in errors["members.1.model"][0]


@pytest.mark.parametrize("count", [0, 17])
def test_it_needs_one_to_sixteen_members(
    make_pool: Callable[..., Pool], sim: Credential, count: int
) -> None:
    members = [MemberInput(credential_id=sim.pk, model="sim-fast") for _ in range(count)]
    assert "members" in _errors(lambda: make_pool(members=members))


def test_it_allows_sixteen_members_and_the_same_model_repeated(
    make_pool: Callable[..., Pool], sim: Credential
) -> None:
    members = [MemberInput(credential_id=sim.pk, model="sim-fast") for _ in range(16)]
    assert make_pool(members=members).members.count() == 16


def test_it_allows_best_of_without_a_judge_but_not_merge_or_debate(
    make_pool: Callable[..., Pool],
) -> None:
    assert not make_pool(judge=None).has_judge
    for mode in ("merge", "debate"):
        assert "judge" in _errors(lambda mode=mode: make_pool(mode=mode, judge=None))


def test_it_accepts_an_unlisted_model_only_when_marked(
    make_pool: Callable[..., Pool], sim: Credential
) -> None:
    member = MemberInput(credential_id=sim.pk, model="sim-fast@ttft=0.01", fallback_models=["x"])
    assert set(_errors(lambda: make_pool(members=[member]))) == {
        "members.0.model",
        "members.0.fallback_models",
    }
    member.custom_model = True
    pool = make_pool(members=[member])
    assert pool.members.get().model_custom


def test_it_refuses_credentials_the_pool_cannot_use(
    make_pool: Callable[..., Pool],
    alice: User,
    bob: User,
    charlie: User,
    workspace: Workspace,
) -> None:
    elsewhere = credential_create(
        workspace=charlie.workspaces.get(),
        user=charlie,
        provider="simulated",
        label="Charlie's",
    )
    bobs = credential_create(workspace=workspace, user=bob, provider="simulated", label="Bob's")
    errors = _errors(
        lambda: make_pool(
            members=[
                MemberInput(credential_id=elsewhere.pk, model="sim-fast"),
                MemberInput(credential_id=bobs.pk, model="sim-fast"),
            ]
        )
    )
    assert errors["members.0.credential"] == ["Choose a credential of this workspace."]
    assert "another member's personal credential" in errors["members.1.credential"][0]
    # Bob may use his own personal credential in a pool of the workspace.
    pool = services.pool_create(
        workspace=workspace,
        user=bob,
        data=pool_input(bobs, judge=JudgeInput(credential_id=bobs.pk, model="sim-judge")),
    )
    assert pool.members.count() == 3


def test_it_lets_members_write_and_viewers_and_outsiders_not(
    make_pool: Callable[..., Pool], bob: User, vera: User, charlie: User
) -> None:
    pool = make_pool(bob)
    assert pool.created_by == bob
    for user in (vera, charlie):
        with pytest.raises(PermissionDenied):
            make_pool(user)
        with pytest.raises(PermissionDenied):
            services.pool_clone(pool=pool, user=user)


def test_it_lets_the_creator_or_an_admin_delete(
    make_pool: Callable[..., Pool], alice: User, bob: User
) -> None:
    alices, bobs = make_pool(alice), make_pool(bob)
    with pytest.raises(PermissionDenied):
        services.pool_delete(pool=alices, user=bob)
    services.pool_delete(pool=bobs, user=bob)
    services.pool_delete(pool=alices, user=alice)
    assert not Pool.objects.exists()


def test_it_updates_members_and_judge(
    make_pool: Callable[..., Pool], alice: User, sim: Credential
) -> None:
    pool = make_pool()
    data = services.pool_input_of(pool)
    data.members = data.members[:2]
    data.mode = "debate"
    data.rounds = 3
    data.judge = JudgeInput(credential_id=sim.pk, model="sim-balanced", swap_twice=True)
    services.pool_update(pool=pool, user=alice, data=data)
    pool.refresh_from_db()
    assert (pool.mode, pool.rounds, pool.judge_model) == ("debate", 3, "sim-balanced")
    assert pool.judge_swap_twice
    assert pool.members.count() == 2


def test_it_clones_a_pool_independently(make_pool: Callable[..., Pool], bob: User) -> None:
    pool = make_pool()
    copy = services.pool_clone(pool=pool, user=bob)
    assert (copy.name, copy.slug, copy.created_by) == ("Trio (copy)", "trio-copy", bob)
    assert [m.model for m in copy.members.all()] == [m.model for m in pool.members.all()]
    copy.members.all().delete()
    assert pool.members.count() == 3


def test_it_freezes_a_json_safe_spec_with_credential_references(
    make_pool: Callable[..., Pool], sim: Credential
) -> None:
    pool = make_pool(
        budget_usd=Decimal("0.25"),
        members=[
            MemberInput(credential_id=sim.pk, model="sim-fast", temperature=0.2),
            MemberInput(credential_id=sim.pk, model="sim-fast", temperature=1.0),
        ],
    )
    frozen = services.pool_freeze(pool)
    assert json.loads(json.dumps(frozen)) == frozen
    ref = f"cred:{sim.pk}"
    assert frozen["providers"] == {
        ref: {
            "credential_id": sim.pk,
            "label": "Sim",
            "kind": "simulated",
            "kind_label": "Simulated (offline)",
            "scope": "workspace",
        }
    }
    assert frozen["labels"] == {"m1": "sim-fast #1", "m2": "sim-fast #2"}
    spec = services.pool_spec(frozen, prompt="Why is the sky blue?")
    assert spec.prompt == "Why is the sky blue?"
    assert [(m.id, m.provider, m.temperature) for m in spec.members] == [
        ("m1", ref, 0.2),
        ("m2", ref, 1.0),
    ]
    assert spec.judge is not None and spec.judge.provider == ref
    assert spec.budget_usd == Decimal("0.25")


def test_it_keeps_history_true_after_the_pool_and_credential_change(
    make_pool: Callable[..., Pool], alice: User, sim: Credential
) -> None:
    pool = make_pool()
    ref = f"cred:{sim.pk}"
    frozen = json.loads(json.dumps(services.pool_freeze(pool)))
    data = services.pool_input_of(pool)
    data.members = data.members[:1]
    services.pool_update(pool=pool, user=alice, data=data)
    credential_delete(credential=sim, user=alice)
    assert len(frozen["spec"]["members"]) == 3
    assert frozen["providers"][ref]["label"] == "Sim"
    pool.refresh_from_db()
    # The live pool now shows what is broken, and cannot be frozen for a new run.
    problems = services.pool_problems(pool, alice)
    assert problems["members.0.credential"] == ["Choose a credential."]
    with pytest.raises(ServiceError, match="no credential"):
        services.pool_freeze(pool)
