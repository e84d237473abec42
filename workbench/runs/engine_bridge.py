"""Between a stored run and the engine: the frozen configuration becomes a ``RunSpec``, the
credentials it names become ``Endpoint``s, finished candidates become ``completed``."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from fusion.results import CompletedCandidate, candidate_key, spec_from_dict
from fusion.types import RunSpec, Usage
from workbench.runs.models import Candidate, CandidateStatus

_SPEC_FIELDS = {f.name for f in fields(RunSpec)}


def spec_dict_of(config: dict[str, Any]) -> dict[str, Any]:
    """The engine's part of a frozen pool configuration (``pools.services.pool_freeze``)."""
    source = config.get("spec", config)
    return {key: value for key, value in source.items() if key in _SPEC_FIELDS}


def spec_for_run(config: dict[str, Any], *, prompt: str, system_prompt: str) -> RunSpec:
    data = spec_dict_of(config)
    data["prompt"] = prompt
    if system_prompt:
        data["system_prompt"] = system_prompt
    return spec_from_dict(data)


def provider_refs(config: dict[str, Any]) -> set[str]:
    """Every provider reference ("cred:<id>") the members and the judge use."""
    spec = spec_dict_of(config)
    refs = {member["provider"] for member in spec.get("members", [])}
    if spec.get("judge"):
        refs.add(spec["judge"]["provider"])
    return refs


def credential_id(ref: str) -> int | None:
    prefix, _, raw = ref.partition(":")
    return int(raw) if prefix == "cred" and raw.isdigit() else None


def display_of(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Provider reference -> {"label", "kind"} as frozen with the pool, for display."""
    return dict(config.get("credentials") or config.get("providers") or {})


def candidate_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The first-round candidate rows a new run starts with, queued, in pool order."""
    display = display_of(config)
    rows = []
    for position, member in enumerate(spec_dict_of(config).get("members", [])):
        info = display.get(member["provider"], {})
        rows.append(
            {
                "member": member["id"],
                "round": 0,
                "position": position,
                "provider": info.get("label", member["provider"]),
                "provider_kind": info.get("kind", ""),
                "model": member["model"],
            }
        )
    return rows


def completed_of(candidates: list[Candidate]) -> dict[str, CompletedCandidate]:
    """Candidates an earlier attempt finished: the engine will not request them again."""
    return {
        candidate_key(c.member, c.round): CompletedCandidate(
            text=c.text,
            usage=Usage(
                input_tokens=c.input_tokens,
                output_tokens=c.output_tokens,
                estimated=c.tokens_estimated,
            ),
            model=c.model,
            cost=c.cost,
            ttft_ms=c.ttft_ms,
            latency_ms=c.latency_ms,
            finish_reason=c.finish_reason or "stop",
        )
        for c in candidates
        if c.status == CandidateStatus.DONE
    }
