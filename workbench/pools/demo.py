"""Demo content: example pools on the simulated credential, one per mode plus self-fusion."""

from __future__ import annotations

from workbench.accounts.models import User, Workspace
from workbench.keys.demo import demo_credential
from workbench.keys.demo import demo_seed as keys_demo_seed
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.models import DebateJudge, Mode, Pool
from workbench.pools.presets import TIMES, self_fusion_temperatures
from workbench.pools.services import pool_create

TRIO = ("sim-fast", "sim-balanced", "sim-slow")


def _pools(credential_id: int) -> list[PoolInput]:
    def trio() -> list[MemberInput]:
        return [MemberInput(credential_id=credential_id, model=m) for m in TRIO]

    def judge() -> JudgeInput:
        return JudgeInput(credential_id=credential_id, model="sim-judge", temperature=0.0)

    return [
        PoolInput(
            name="Best of three (demo)",
            slug="demo-best-of",
            description="Three simulated models answer; a simulated judge picks the best.",
            mode=Mode.BEST_OF,
            members=trio(),
            judge=judge(),
        ),
        PoolInput(
            name="Merge three (demo)",
            slug="demo-merge",
            description="Three simulated models answer; the judge merges their best points.",
            mode=Mode.MERGE,
            members=trio(),
            judge=judge(),
        ),
        PoolInput(
            name="Debate (demo)",
            slug="demo-debate",
            description="Three simulated models revise after reading each other, twice.",
            mode=Mode.DEBATE,
            rounds=2,
            debate_judge=DebateJudge.MERGE,
            members=trio(),
            judge=judge(),
        ),
        PoolInput(
            name=f"Self-fusion {TIMES}3",
            slug="demo-self-fusion",
            description="One simulated model answers three times at different temperatures.",
            mode=Mode.MERGE,
            members=[
                MemberInput(credential_id=credential_id, model="sim-balanced", temperature=t)
                for t in self_fusion_temperatures(3)
            ],
            judge=judge(),
        ),
    ]


def demo_seed(*, workspace: Workspace, user: User) -> list[Pool]:
    """Idempotent: creates the example pools that are missing; edited ones are left alone."""
    credential = demo_credential(workspace) or keys_demo_seed(workspace=workspace, user=user)
    pools = []
    for data in _pools(credential.pk):
        existing = Pool.objects.filter(workspace=workspace, slug=data.slug).first()
        pools.append(existing or pool_create(workspace=workspace, user=user, data=data))
    return pools
