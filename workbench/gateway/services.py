"""The gateway's database side (synchronous; the async views call it via ``sync_to_async``):
authenticate and rate-limit a token, resolve a model name, start a fusion run or open a
single-model run, and read a run's outcome.

Request options and pools: a request's ``temperature`` and ``max_tokens`` override those of
every member of a pool for that run (they are what the caller asked of "the model"); the
judge keeps its own settings, since it is the pool's instrument, not the caller's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from fusion.costs import Price
from fusion.providers.base import Endpoint
from fusion.providers.transport import HttpClient
from fusion.types import Member, Message
from workbench.accounts.models import Membership, Role
from workbench.gateway.errors import GatewayError
from workbench.gateway.inputs import ChatInput
from workbench.gateway.ratelimit import rate_hit
from workbench.keys.models import Credential
from workbench.keys.selectors import catalogs_for, credentials_usable_by, price_table
from workbench.keys.services import credential_endpoint
from workbench.lib.errors import ServiceError
from workbench.pools.inputs import MemberInput, PoolInput, validate_pool
from workbench.pools.models import Pool
from workbench.pools.selectors import pools_for
from workbench.runs import services as run_services
from workbench.runs.engine_bridge import candidate_rows, spec_for_run
from workbench.runs.execution import _timeouts as run_timeouts
from workbench.runs.launch import ADHOC_NAME, config_estimate, freeze_clean, pool_config
from workbench.runs.models import (
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


def rate_check(token: ApiToken, *, now: float | None = None) -> None:
    """At most ``token.rate_per_minute`` requests in any 60 s (``ratelimit``)."""
    decision = rate_hit(cache.make_key(f"gw:rate:{token.pk}"), limit=token.rate_per_minute, now=now)
    if not decision.allowed:
        raise GatewayError(
            429,
            f"Rate limit reached: {token.rate_per_minute} requests a minute for this token.",
            code="rate_limit_exceeded",
            retry_after=decision.retry_after_s,
        )


def authenticate(raw: str | None) -> ApiToken:
    token = token_for(raw)
    rate_check(token)
    return token


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


_PAYMENT_CODES = frozenset({"budget_exceeded", "over_run_cap", "budget_unpriced"})


def _service_status(exc: ServiceError) -> GatewayError:
    if exc.code in _PAYMENT_CODES:
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


def member_overrides(
    config: dict[str, Any], *, temperature: float | None, max_tokens: int | None
) -> dict[str, Any]:
    """The frozen configuration with the request's options on every member (not the judge)."""
    for member in config["spec"]["members"]:
        if temperature is not None:
            member["temperature"] = temperature
        if max_tokens is not None:
            member["max_tokens"] = max_tokens
    return config


def fusion_start(*, token: ApiToken, pool: Pool, chat: ChatInput) -> Run:
    """A normal run of the pool (source gateway), visible in the workbench history."""
    _membership(token, Role.MEMBER)
    if chat.fallbacks:
        raise GatewayError(
            400,
            "fallbacks apply to a single model; a pool's members have their own.",
            param="fallbacks",
            code="invalid_request",
        )
    prompt, system_prompt = flatten(chat.messages)
    try:
        prompt, system_prompt = run_services.prompt_validate(prompt, system_prompt)
        config = member_overrides(
            pool_config(pool, token.user),
            temperature=chat.temperature,
            max_tokens=chat.max_tokens,
        )
        estimate = config_estimate(config, prompt=prompt, system_prompt=system_prompt)
        return run_services.run_create(
            workspace=token.workspace,
            user=token.user,
            config=config,
            prompt=prompt,
            system_prompt=system_prompt,
            pool=pool,
            source=RunSource.GATEWAY,
            estimated_cost=estimate.priced_usd,
        )
    except ServiceError as exc:
        raise _service_status(exc) from None


@dataclass(frozen=True)
class Passthrough:
    """A single-model run, open and reserved, with what the engine's ``Caller`` needs.

    ``endpoints`` hold decrypted keys: in memory only, for this call, never logged.
    """

    run_id: str
    config: dict[str, Any]
    member: Member
    max_attempts: int
    endpoints: dict[str, Endpoint]
    prices: dict[str, Price]

    @property
    def secrets(self) -> list[str]:
        return [key.secret for ep in self.endpoints.values() for key in ep.keys]


def _passthrough_config(token: ApiToken, target: SingleTarget, chat: ChatInput) -> dict[str, Any]:
    """A one-member configuration through the pools' own validation, frozen like any run's."""
    label = target.credential.label
    fallbacks = [f.removeprefix(f"{label}/") for f in chat.fallbacks]
    member = MemberInput(
        credential_id=target.credential.pk,
        model=target.model,
        temperature=chat.temperature,
        max_tokens=chat.max_tokens,
        fallback_models=fallbacks,
        custom_model=True,  # the caller names the model; the catalog need not list it
    )
    clean = validate_pool(
        PoolInput(name=ADHOC_NAME, members=[member]),
        user=token.user,
        workspace=token.workspace,
        usable=[target.credential],  # resolved (with its keys) for this token already
    )
    config = freeze_clean(clean)
    config["name"] = f"{label}/{target.model}"[: Run._meta.get_field("pool_name").max_length]
    return config


def passthrough_open(
    *, token: ApiToken, target: SingleTarget, chat: ChatInput, client: HttpClient
) -> Passthrough:
    """Record a single-model call as a run of one member (source gateway), already running and
    with its estimate reserved against the budgets, and make its endpoint.

    The run is executed by the web process serving the request, never by a worker:
    ``cancel_requested`` is set from the start so that, should this process die and the reaper
    hand the run to a worker, the worker ends it as cancelled instead of calling the model for
    a client that is gone. (A person's cancel still reaches the call: it watches the run's
    cancel key in Redis like a worker does.)
    """
    _membership(token, Role.MEMBER)
    prompt, system_prompt = flatten(chat.messages)
    try:
        prompt, system_prompt = run_services.prompt_validate(prompt, system_prompt)
        config = _passthrough_config(token, target, chat)
        prices = price_table()
        estimate = config_estimate(
            config, prompt=prompt, system_prompt=system_prompt, prices=prices
        )
        run = _passthrough_create(token, config, prompt, system_prompt, estimate.priced_usd)
    except ServiceError as exc:
        raise _service_status(exc) from None
    spec = spec_for_run(config, prompt=prompt, system_prompt=system_prompt)
    member = spec.members[0]
    # The credential came with its keys (``credentials_usable_by`` prefetches them in order).
    endpoint = credential_endpoint(target.credential, client=client, timeouts=run_timeouts())
    return Passthrough(
        run_id=str(run.pk),
        config=config,
        member=member,
        max_attempts=spec.max_attempts,
        endpoints={member.provider: endpoint},
        prices=prices,
    )


@transaction.atomic
def _passthrough_create(
    token: ApiToken,
    config: dict[str, Any],
    prompt: str,
    system_prompt: str,
    estimate: Decimal,
) -> Run:
    from workbench.usage.budgets import budget_reserve

    budget_reserve(workspace=token.workspace, user=token.user, estimate=estimate)
    now = timezone.now()
    run = Run.objects.create(
        workspace=token.workspace,
        created_by=token.user,
        pool_name=config["name"],
        config=config,
        mode=config["spec"].get("mode", "best_of"),
        prompt=prompt,
        system_prompt=system_prompt,
        source=RunSource.GATEWAY,
        status=RunStatus.RUNNING,
        attempts=1,  # this process's claim: the recorder's writes are fenced by it
        cancel_requested=True,  # see passthrough_open
        estimated_cost=estimate,
        started_at=now,
        heartbeat_at=now,
    )
    Candidate.objects.bulk_create(
        Candidate(run=run, status=CandidateStatus.STREAMING, **row)
        for row in candidate_rows(config)
    )
    return run


def target_open(*, token: ApiToken, chat: ChatInput, client: HttpClient) -> Run | Passthrough:
    """Resolve the model the request names and start serving it: a fusion run handed to a
    worker, or a single-model run for this process to execute."""
    target = target_resolve(token, chat.model)
    if isinstance(target, FusionTarget):
        return fusion_start(token=token, pool=target.pool, chat=chat)
    return passthrough_open(token=token, target=target, chat=chat, client=client)


def passthrough_abandon(*, run_id: str) -> None:
    """End a single-model run whose client left before its call was made."""
    with transaction.atomic():
        ended = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=1).update(
            status=RunStatus.CANCELLED,
            error="The client disconnected before the call was made.",
            finished_at=timezone.now(),
            total_cost=Decimal(0),
        )
        if ended:
            Candidate.objects.filter(run_id=run_id).update(status=CandidateStatus.CANCELLED)


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
    run = Run.objects.select_related("workspace").get(pk=run_id)
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
