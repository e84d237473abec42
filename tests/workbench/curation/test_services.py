"""Curation services and the selectors they share: judgments, gold answers, run copies and
which answers are judged."""

from __future__ import annotations

import pytest

from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace
from workbench.curation.exports import ExportFilters, export_runs
from workbench.curation.models import Judgment
from workbench.curation.selectors import final_candidates, gold_of, judgments_of
from workbench.curation.services import (
    CANDIDATE_COPIED,
    RUN_COPIED,
    gold_answer_save,
    judgment_save,
    run_copy,
    run_tags_set,
)
from workbench.lib.errors import ServiceError
from workbench.runs.models import Candidate, CandidateStatus, Run

pytestmark = pytest.mark.django_db


def test_it_judges_the_last_round_of_each_member(workspace: Workspace, alice: User) -> None:
    run = finished_run(workspace, alice, models=("sim-fast", "sim-slow"))
    first = {c.member: c for c in run.candidates.all()}
    # A debate revision of m1 only: m1's last answer is round 1, m2's stays round 0.
    Candidate.objects.create(
        run=run, member="m1", round=1, position=0, provider="x", model="sim-fast",
        status=CandidateStatus.DONE, text="revised",
    )  # fmt: skip
    found = final_candidates(Run.objects.get(pk=run.pk))
    assert [(c.member, c.round) for c in found] == [("m1", 1), ("m2", 0)]
    assert found[1].pk == first["m2"].pk
    # The same answer whether the candidates were prefetched (analysis, exports) or not.
    prefetched = export_runs(workspace, ExportFilters(curated_only=False)).get(pk=run.pk)
    assert [c.pk for c in final_candidates(prefetched)] == [c.pk for c in found]


def test_it_saves_a_judgment_without_a_choice_and_keeps_gold_unless_given(
    workspace: Workspace, alice: User, bob: User
) -> None:
    run = finished_run(workspace, alice)
    judgment = judgment_save(run=run, user=bob, choice="", ratings={"m1": 4})
    assert judgment.label == "" and not judgment.decided
    gold_answer_save(run=run, user=bob, text="  The gold.  ")
    judgment = judgment_save(run=run, user=bob, choice="pick", winner="m2")
    assert judgment.decided and judgment.gold_answer == "The gold."
    assert judgment.ratings == {}  # a judgment is replaced as a whole, gold aside
    judgment = judgment_save(run=run, user=bob, choice="pick", winner="m2", gold_answer="")
    assert judgment.gold_answer == "" and judgment.gold_updated_at is None
    with pytest.raises(ServiceError):
        gold_answer_save(run=run, user=bob, text="a\x00b")
    assert Judgment.objects.filter(run=run).count() == 1


def test_it_breaks_gold_ties_by_the_later_judgment(
    workspace: Workspace, alice: User, bob: User
) -> None:
    run = finished_run(workspace, alice)
    gold_answer_save(run=run, user=alice, text="Alice's.")
    gold_answer_save(run=run, user=bob, text="Bob's.")
    same = Judgment.objects.get(user=alice).gold_updated_at
    Judgment.objects.update(gold_updated_at=same)
    assert gold_of(list(judgments_of(run))) == "Bob's."


def test_it_copies_what_a_run_shows_and_nothing_of_its_workspace(
    workspace: Workspace, alice: User, bob: User
) -> None:
    run = finished_run(workspace, alice)
    run_tags_set(run=run, user=alice, names="kept")
    judgment_save(run=run, user=bob, choice="pick", winner="m1")
    Run.objects.filter(pk=run.pk).update(attempts=3, system_prompt="Be brief.")
    run.refresh_from_db()
    target = alice.memberships.get(workspace__personal=True).workspace
    copy = run_copy(run=run, user=bob, target=target)
    copy.refresh_from_db()
    for name in RUN_COPIED:
        assert getattr(copy, name) == getattr(run, name), name
    assert (copy.workspace, copy.created_by, copy.pool) == (target, bob, None)
    assert copy.attempts == 0  # worker bookkeeping stays behind
    assert not copy.judgments.exists() and [t.name for t in copy.tags.all()] == ["kept"]
    originals = {c.key: c for c in run.candidates.all()}
    for candidate in copy.candidates.all():
        original = originals[candidate.key]
        for name in CANDIDATE_COPIED:
            assert getattr(candidate, name) == getattr(original, name), name
        assert candidate.provider == "copied" != original.provider  # a credential label
    with pytest.raises(ServiceError):
        run_copy(run=run, user=bob, target=workspace)
