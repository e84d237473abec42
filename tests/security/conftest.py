"""One workspace with one of everything, so every route's URL can be filled with real objects."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.workbench import conftest as people
from tests.workbench.runs.helpers import simulated_pool
from tests.workbench.runs.pages import finished_run
from workbench.accounts import services as accounts
from workbench.accounts.models import Invitation, Membership, User, Workspace
from workbench.curation.models import ShareLink
from workbench.curation.services import share_link_create
from workbench.experiments.arms import ArmChoice
from workbench.experiments.datasets import ItemInput
from workbench.experiments.models import Dataset, Experiment
from workbench.experiments.services import dataset_create, experiment_create
from workbench.keys.models import Credential
from workbench.pools.models import Pool
from workbench.runs.models import Run
from workbench.tokens.models import ApiToken
from workbench.tokens.services import token_create

# The people of every workbench test (alice owns "acme", bob member, vera viewer, charlie
# outsider), shared rather than copied.
_fast_and_isolated = people._fast_and_isolated
make_user = people.make_user
alice, bob, vera, charlie = people.alice, people.bob, people.vera, people.charlie
workspace = people.workspace
alice_client, bob_client = people.alice_client, people.bob_client
vera_client, charlie_client = people.vera_client, people.charlie_client


@dataclass
class World:
    workspace: Workspace
    alice: User
    bob: User
    vera: User
    charlie: User
    pool: Pool
    credential: Credential
    run: Run
    invitation: Invitation
    membership: Membership  # bob's
    dataset: Dataset
    experiment: Experiment
    share: ShareLink
    token: ApiToken
    raw_token: str


def build_world(workspace: Workspace, alice: User, bob: User, vera: User, charlie: User) -> World:
    pool = simulated_pool(workspace, alice, ["sim-fast@ttft=0.01,tps=0,tokens=5"])
    run = finished_run(workspace, alice, pool=pool)
    dataset = dataset_create(
        workspace=workspace, user=alice, name="arith", items=[ItemInput("2 + 2?", "4", "number")]
    )
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=ArmChoice(pool=pool)
    )
    # A rate limit no fuzz reaches: a 429 would stop its requests short of the code under test.
    token, raw = token_create(workspace=workspace, user=alice, name="script", rate_per_minute=10**6)
    return World(
        workspace=workspace,
        alice=alice,
        bob=bob,
        vera=vera,
        charlie=charlie,
        pool=pool,
        credential=pool.members.first().credential,
        run=run,
        invitation=accounts.invitation_create(workspace=workspace, actor=alice, role="member"),
        membership=Membership.objects.get(workspace=workspace, user=bob),
        dataset=dataset,
        experiment=experiment,
        share=share_link_create(run=run, user=alice),
        token=token,
        raw_token=raw,
    )


@pytest.fixture
def world(workspace: Workspace, alice: User, bob: User, vera: User, charlie: User) -> World:
    return build_world(workspace, alice, bob, vera, charlie)
