"""Blind mode: people judge answers, not brands.

When blind mode is on for a run (its workspace's setting or its pool's, ``selectors.is_blind``)
each person sees the answers in an order of their own — shuffled, the same on every visit —
and, until they have said which answer is best (a pick, a tie or "none is good"), sees no
model name and no credential label anywhere on the run page: the answers are "Answer 1",
"Answer 2" … in that order. Once they have judged, the names come back; the order stays, so
nothing they judged moves.

What stays visible: the simulated badge (simulated models are labelled wherever they show),
tokens, latency and cost. The run's websocket hides the names too (``LiveScrubber``), so they
are not in the page's frames either; the REST API, which programs read, still carries them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from workbench.accounts.models import User, Workspace
from workbench.curation import selectors
from workbench.runs.models import Run


@dataclass(frozen=True)
class Blinding:
    on: bool  # blind mode applies to the run: this person's order is shuffled
    hidden: bool  # names are hidden from this person now (they have not judged yet)
    order: tuple[str, ...]  # the members, in the order this person sees them

    @property
    def positions(self) -> dict[str, int]:
        return {member: i for i, member in enumerate(self.order)}

    def letter(self, member: str) -> str:
        """What the panel marks the answer with: A, B … in pool order; in blind mode the
        number of its column ("Answer 2"). Numbers, not letters, so that the judge's own
        letters (its rationale says "Answer B") are never taken for this person's order."""
        index = self.positions.get(member)
        if index is None:
            return "?"
        return str(index + 1) if self.on else _letter(index)

    def alias(self, member: str) -> str:
        return f"Answer {self.letter(member)}"

    def aliases(self) -> dict[str, str]:
        return {member: self.alias(member) for member in self.order}


def _letter(index: int) -> str:
    # A … Z, then AA, AB … (a pool holds at most 16 members, but never fail).
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def blinding_of(run: Run, user: User) -> Blinding:
    members = [c.member for c in selectors.final_candidates(run)]
    if not selectors.is_blind(run):
        return Blinding(on=False, hidden=False, order=tuple(members))
    order = selectors.blind_order(run, user, members)
    return Blinding(on=True, hidden=not selectors.has_decided(run, user), order=tuple(order))


def names_hidden(run: Run, user: User) -> bool:
    return selectors.is_blind(run) and not selectors.has_decided(run, user)


# --- the run's websocket -------------------------------------------------------------------------

HIDDEN = "(hidden)"
# Fields of events and of the live state that name a model, a credential or a key.
_NAME_FIELDS = frozenset({"model", "provider", "key_label", "fallback_models", "label"})
# The answers themselves: never touched (clients check their lengths against the server's).
_TEXT_FIELDS = frozenset({"text"})


@dataclass(frozen=True)
class LiveScrubber:
    """Blanks model names and credential labels out of what the run's websocket sends to a
    person who has not judged a blind run yet: the naming fields, and the names wherever else
    they appear (an error says which model failed). Answer texts are left whole."""

    names: tuple[str, ...]  # longest first, so a name inside a longer one goes with it

    def scrub(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self._field(key, item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        if isinstance(value, str):
            for name in self.names:
                value = value.replace(name, HIDDEN)
        return value

    def _field(self, key: str, value: Any) -> Any:
        if key in _TEXT_FIELDS:
            return value
        if key in _NAME_FIELDS and isinstance(value, str | list) and value:
            return HIDDEN if isinstance(value, str) else [HIDDEN for _ in value]
        return self.scrub(value)


def live_scrubber(run: Run, user: User) -> LiveScrubber | None:
    """The scrubber for this person's view of the run, or None when they may see the names."""
    if not names_hidden(run, user):
        return None
    spec = (run.config or {}).get("spec") or {}
    members = spec.get("members") or []
    names = {m.get("model", "") for m in members}
    names |= {f for m in members for f in m.get("fallback_models") or []}
    names.add((spec.get("judge") or {}).get("model", ""))
    names |= {str(p.get("label", "")) for p in ((run.config or {}).get("providers") or {}).values()}
    names |= {c.key_label for c in run.calls.all() if c.key_label}
    ordered = sorted((n for n in names if len(n) >= 3), key=len, reverse=True)
    return LiveScrubber(tuple(ordered))


# --- the run page --------------------------------------------------------------------------------

HIDDEN_PROVIDER = {"label": "", "kind": "", "simulated": False}


def _hidden_provider(provider: dict[str, Any]) -> dict[str, Any]:
    simulated = bool(provider.get("simulated"))
    return {**HIDDEN_PROVIDER, "simulated": simulated, "kind": "simulated" if simulated else ""}


def blind_run_context(context: dict[str, Any], run: Run, user: User) -> None:
    """Apply blind mode to the run page's context (``runs.views._run_context``): the columns
    in this person's order and, until they judge, every model name and credential label
    replaced or blanked — columns, verdict, judge, call table, and what the live script is
    given (``live``)."""
    blinding = blinding_of(run, user)
    context["blind"] = blinding.hidden
    if not blinding.on:
        return
    view = context["view"]
    live = context["live"]
    positions = blinding.positions
    for round_ in view.rounds:
        round_.columns.sort(key=lambda c: (positions.get(c.member, len(positions)), c.member))
        for column in round_.columns:
            column.position = positions.get(column.member, column.position)
    live["order"] = positions
    if not blinding.hidden:
        return
    aliases = blinding.aliases()
    for round_ in view.rounds:
        for column in round_.columns:
            column.model = aliases.get(column.member, "Answer ?")
            column.provider = _hidden_provider(column.provider)
    if view.verdict is not None:
        verdict = view.verdict
        verdict.winner_model = aliases.get(str(verdict.winner), "") if verdict.winner else ""
        for score in verdict.scores:
            score.model = aliases.get(score.member, "")
    for call in view.calls:
        call.model = aliases.get(call.who, "")
        call.provider = _hidden_provider(call.provider)
        call.key_label = ""
    if view.judge is not None:
        view.judge = {"provider": _hidden_provider(view.judge["provider"]), "model": ""}
    for judge_pass in view.judge_passes:
        judge_pass.model = ""
        judge_pass.provider = _hidden_provider(judge_pass.provider)
    view.providers = {}
    view.models_by_member = dict(aliases)
    context["labels"] = aliases
    live["labels"] = aliases
    live["providers"] = {}
    live["blind"] = True


# --- the runs list -------------------------------------------------------------------------------


def runs_hiding_names(runs: Iterable[Run], user: User, workspace: Workspace) -> set[Any]:
    """The ids of those runs (all of ``workspace``) whose model names this person may not see
    yet, in one query."""
    blind = [
        run.pk
        for run in runs
        if workspace.blind_mode or (run.pool is not None and run.pool.blind_mode)
    ]
    if not blind:
        return set()
    return set(blind) - selectors.runs_decided_by(user, blind)
