"""The demo seed: a simulated workspace credential and four example pools, idempotently."""

from __future__ import annotations

import pytest

from workbench.keys.models import Credential
from workbench.lib.demo import demo_seed
from workbench.pools.estimate import pool_estimate
from workbench.pools.models import Pool
from workbench.pools.services import pool_problems

pytestmark = pytest.mark.django_db


def test_it_seeds_a_simulated_credential_and_example_pools_once() -> None:
    demo_seed()
    demo_seed()
    credential = Credential.objects.get()
    assert (credential.label, credential.provider, credential.scope) == (
        "Simulated (demo)",
        "simulated",
        "workspace",
    )
    pools = {p.slug: p for p in Pool.objects.all()}
    assert set(pools) == {"demo-best-of", "demo-merge", "demo-debate", "demo-self-fusion"}
    assert pools["demo-debate"].rounds == 2
    assert [m.temperature for m in pools["demo-self-fusion"].members.all()] == [0.2, 0.6, 1.0]
    for pool in pools.values():
        assert pool.members.count() == 3
        assert pool_problems(pool, pool.created_by) == {}
        assert pool_estimate(pool).total_usd is not None  # simulated models have a price


def test_it_leaves_edited_demo_pools_alone() -> None:
    demo_seed()
    Pool.objects.filter(slug="demo-merge").update(name="Mine now")
    Pool.objects.filter(slug="demo-debate").delete()
    demo_seed()
    assert Pool.objects.get(slug="demo-merge").name == "Mine now"
    assert Pool.objects.filter(slug="demo-debate").exists()
