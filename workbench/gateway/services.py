"""The gateway's database side (synchronous; the async views call it via ``sync_to_async``):
authenticate and rate-limit a token, resolve a model name, start a fusion run, open and close
the record of a single-model call, and read a run's outcome."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from fusion.costs import Price
from fusion.types import Message
from workbench.accounts.models import Membership, Role
from workbench.gateway.errors import GatewayError
from workbench.keys.models import Credential
from workbench.keys.selectors import catalogs_for, credentials_usable_by, price_table
from workbench.lib.errors import ServiceError
from workbench.pools.models import Pool
from workbench.pools.selectors import pools_for
from workbench.runs import services as run_services
from workbench.runs.launch import AdhocMember, adhoc_config, config_estimate, pool_config
from workbench.runs.models import (
    CallStatus,
    Candidate,
    CandidateStatus,
    ProviderCall,
    Run,
    RunSource,
    RunStatus,
)
from workbench.tokens.models import ApiToken
from workbench.tokens.services import token_authenticate

FUSION_PREFIX = "fusion/"


def token_for(raw: str | None) -> ApiToken:
    token = token_authenticate(raw or "")
    if token is None:
        raise GatewayError(401, "Invalid or revoked API token.", code="invalid_api_key")
    return token


def rate_check(token: ApiToken) -> None:
    """At most ``token.rate_per_minute`` requests per token per clock minute (a Redis counter
    through the cache; shared by every web process)."""
    key = f"gw:rate:{token.pk}:{int(time.time() // 60)}"
    cache.add(key, 0, timeout=90)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=90)
        count = 1
    if count > token.rate_per_minute:
        raise GatewayError(
            429,
            f"Rate limit reached: {token.rate_per_minute} requests a minute for this token.",
            code="rate_limit_exceeded",
        )


def _membership(token: ApiToken, min_role: str) -> Membership:
    membership = Membership.objects.get(workspace_id=token.workspace_id, user_id=token.user_id)
    if not membership.has_role(min_role):
        raise GatewayError(403, f"This needs the {min_role} role or higher in the workspace.")
    return membership


def models_for(token: ApiToken) -> list[dict[str, Any]]:
    """What the token may call: every pool as ``fusion/<slug>``, every catalog model of every
    credential its user may use as ``<credential label>/<model>``."""
    user, workspace = token.user, token.workspace
    created = int(token.workspace.created_at.timestamp())
    owner = workspace.slug
    rows = [
        {"id": FUSION_PREFIX + pool.slug, "object": "model", "created": created, "owned_by": owner}
        for pool in pools_for(user, workspace)
    ]
    labels = dict(credentials_usable_by(user, workspace).values_list("pk", "label"))
    for pk, models in catalogs_for(user, workspace).items():
        rows += [
            {"id": f"{labels[pk]}/{m}", "object": "model", "created": created, "owned_by": owner}
            for m in models
        ]
    return rows


@dataclass(frozen=True)
class FusionTarget:
    pool: Pool


@dataclass(frozen=True)
class SingleTarget:
    credential: Credential
    model: str


def target_resolve(token: ApiToken, model: str) -> FusionTarget | SingleTarget:
    """The pool or the credential and model ``model`` names, in the token's workspace only."""
    model = (model or "").strip()
    if not model:
        raise GatewayError(400, "Name a model.", param="model", code="missing_model")
    user, workspace = token.user, token.workspace
    if model.startswith(FUSION_PREFIX):
        pool = pools_for(user, workspace).filter(slug=model.removeprefix(FUSION_PREFIX)).first()
        if pool is not None:
            return FusionTarget(pool)
    # Labels may contain "/": the longest label that prefixes the name wins.
    best: Credential | None = None
    for credential in credentials_usable_by(user, workspace):
        label = credential.label
        if (
            model.startswith(label + "/")
            and len(model) > len(label) + 1
            and (best is None or len(label) > len(best.label))
        ):
            best = credential
    if best is not None:
        return SingleTarget(best, model[len(best.label) + 1 :])
    raise GatewayError(
        404,
        f"The model {model!r} does not exist or you do not have access to it. "
        "Use fusion/<pool-slug> or <credential label>/<model> (GET /v1/models lists them).",
        param="model",
        code="model_not_found",
    )


def _service_status(exc: ServiceError) -> GatewayError:
    if exc.code in ("budget_exceeded", "over_run_cap"):
        return GatewayError(402, exc.message, code=exc.code)
    return GatewayError(400, exc.message, code=exc.code)


def flatten(messages: list[Message]) -> tuple[str, str]:
    """A conversation as the one prompt (and system prompt) a fusion run takes."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns = [m for m in messages if m.role != "system"]
    if len(turns) == 1 and turns[0].role == "user":
        return turns[0].content, system
    names = {"user": "User", "assistant": "Assistant"}
    transcript = "\n\n".join(f"{names[m.role]}: {m.content}" for m in turns)
    return transcript + "\n\nAssistant:", system


def fusion_start(*, token: ApiToken, pool: Pool, messages: list[Message]) -> Run:
    """A normal run of the pool (source API), visible in the workbench history."""
    _membership(token, Role.MEMBER)
    prompt, system_prompt = flatten(messages)
    try:
        prompt, system_prompt = run_services.prompt_validate(prompt, system_prompt)
        config = pool_config(pool, token.user)
        estimate = config_estimate(config, prompt=prompt, system_prompt=system_prompt)
        return run_services.run_create(
            workspace=token.workspace,
            user=token.user,
            config=config,
            prompt=prompt,
            system_prompt=system_prompt,
            pool=pool,
            source=RunSource.API,
            estimated_cost=estimate.priced_usd,
        )
    except ServiceError as exc:
        raise _service_status(exc) from None


@dataclass(frozen=True)
class SingleCall:
    run_id: str
    credential_id: int
    prices: dict[str, Price]


@transaction.atomic
def single_open(
    *,
    token: ApiToken,
    target: SingleTarget,
    messages: list[Message],
    max_tokens: int | None,
) -> SingleCall:
    """Record a single-model call as a run of one member (source API), already running, with
    its estimate reserved against the budgets; no worker is involved."""
    _membership(token, Role.MEMBER)
    prompt, system_prompt = flatten(messages)
    try:
        prompt, system_prompt = run_services.prompt_validate(prompt, system_prompt)
        config = adhoc_config(
            user=token.user,
            workspace=token.workspace,
            members=[AdhocMember(target.credential.pk, target.model)],
        )
        if max_tokens:
            config["spec"]["members"][0]["max_tokens"] = max_tokens
        config["name"] = f"{target.credential.label}/{target.model}"
        estimate = config_estimate(config, prompt=prompt, system_prompt=system_prompt)
        from workbench.usage.budgets import budget_reserve

        budget_reserve(workspace=token.workspace, user=token.user, estimate=estimate.priced_usd)
    except ServiceError as exc:
        raise _service_status(exc) from None
    now = timezone.now()
    run = Run.objects.create(
        workspace=token.workspace,
        created_by=token.user,
        pool_name=config["name"],
        config=config,
        mode=config["spec"].get("mode", "best_of"),
        prompt=prompt,
        system_prompt=system_prompt,
        source=RunSource.API,
        status=RunStatus.RUNNING,
        estimated_cost=estimate.priced_usd,
        started_at=now,
        heartbeat_at=now,
    )
    Candidate.objects.create(
        run=run,
        member="m1",
        provider=target.credential.label,
        provider_kind=target.credential.provider,
        model=target.model,
        status=CandidateStatus.STREAMING,
    )
    return SingleCall(run_id=str(run.pk), credential_id=target.credential.pk, prices=price_table())


def single_endpoint_credential(call: SingleCall) -> Credential:
    return Credential.objects.prefetch_related("keys").get(pk=call.credential_id)


@dataclass(frozen=True)
class SingleResult:
    status: str  # "ok", "failed", "cancelled"
    model: str
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    estimated: bool
    cost: Decimal | None
    ttft_ms: float | None
    latency_ms: float
    key_label: str
    attempts: int
    error: str = ""


@transaction.atomic
def single_close(*, call: SingleCall, result: SingleResult) -> None:
    """The call's record, the candidate and the run's outcome, in one transaction."""
    run = Run.objects.select_for_update().get(pk=call.run_id)
    ok = result.status == CallStatus.OK
    ProviderCall.objects.create(
        run=run,
        call_id="m1/0/1",
        candidate="m1",
        provider=run.candidates.first().provider if run.candidates.exists() else "",
        model=result.model,
        key_label=result.key_label,
        status=result.status,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        tokens_estimated=result.estimated,
        cost=result.cost,
        ttft_ms=result.ttft_ms,
        latency_ms=result.latency_ms,
        attempts=result.attempts,
        error=result.error,
    )
    Candidate.objects.filter(run=run, member="m1").update(
        status=CandidateStatus.DONE if ok else result.status,
        text=result.text,
        error=result.error,
        finish_reason=result.finish_reason,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        tokens_estimated=result.estimated,
        cost=result.cost,
        ttft_ms=result.ttft_ms,
        latency_ms=result.latency_ms,
    )
    statuses = {"ok": RunStatus.FINISHED, "cancelled": RunStatus.CANCELLED}
    run.status = statuses.get(result.status, RunStatus.FAILED)
    run.error = result.error
    run.winner = "m1" if ok else ""
    run.fused_text = result.text if ok else ""
    run.total_cost = result.cost
    run.cost_unpriced = result.cost is None
    run.input_tokens = result.input_tokens
    run.output_tokens = result.output_tokens
    run.wall_ms = result.latency_ms
    run.finished_at = timezone.now()
    run.save()


def run_cancel_for(*, run_id: str, token: ApiToken) -> None:
    """The client went away: stop the run (nobody is left to read it)."""
    run = Run.objects.get(pk=run_id)
    if not run.is_terminal:
        with contextlib.suppress(ServiceError):  # it ended meanwhile
            run_services.run_cancel(run=run, user=token.user)


def run_status(run_id: str) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run_id)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def run_outcome(run_id: str, base_url: str) -> dict[str, Any]:
    """The ended run as the gateway reports it: answer, usage over EVERY call, and details."""
    run = Run.objects.get(pk=run_id)
    calls = ProviderCall.objects.filter(run=run)
    sums = calls.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost"))
    candidates = list(run.candidates.all())
    answer = run.fused_text
    if not answer and run.status in (RunStatus.FINISHED, RunStatus.FINISHED_WITHOUT_VERDICT):
        # No verdict: the first answer that finished, in pool order, rather than nothing.
        done = [c for c in candidates if c.status == CandidateStatus.DONE]
        answer = done[-1].text if done and run.mode == "debate" else (done[0].text if done else "")
    path = reverse("runs:detail", kwargs={"ws": run.workspace.slug, "run_id": run.pk})
    fusion = {
        "run_id": str(run.pk),
        "url": base_url + path,
        "status": run.status,
        "mode": run.mode,
        "pool": run.pool_name,
        "winner": run.winner or None,
        "verdict": run.verdict,
        "cost": _money(sums["c"]),
        "candidates": [
            {
                "member": c.member,
                "round": c.round,
                "provider": c.provider,
                "model": c.model,
                "status": c.status,
                "text": c.text,
                "error": c.error or None,
                "usage": {
                    "prompt_tokens": c.input_tokens,
                    "completion_tokens": c.output_tokens,
                    "total_tokens": c.input_tokens + c.output_tokens,
                },
                "cost": _money(c.cost),
            }
            for c in candidates
        ],
    }
    return {
        "status": run.status,
        "error": run.error,
        "answer": answer,
        "input_tokens": sums["i"] or 0,
        "output_tokens": sums["o"] or 0,
        "fusion": fusion,
    }
