"""Deterministic offline models for the demo, the tests and the benchmarks.

Every answer starts "[simulated <model>]" so it can never pass for a real model's. A model's
behaviour comes from a preset named by the model (``sim-fast``, ``sim-slow``, ``sim-flaky``,
``sim-hang`` …), then the provider's ``options``, then parameters in the model name after
``@``, e.g. ``sim-fast@ttft=0.01,tps=0,tokens=20,fail=0.3``:

- ``ttft`` / ``ttft_s``: seconds to the first token; ``tps`` / ``tokens_per_s``: pace (0: all
  at once); ``tokens`` / ``answer_tokens``: answer length in words;
- ``fail`` / ``failure_rate``: chance that a call fails with a retryable 503 before its first
  token; ``truncate`` / ``truncate_rate``: chance that a stream is cut halfway;
- ``hang``: stream one token then never finish (for cancellation tests).

Costs come from the price table like any model's (``fusion.costs`` has a fictitious ``sim-*``
price), so the demo shows costs and budgets at work.

Outcomes are deterministic for a given prompt, model, temperature, ``seed`` option and how many
times this provider instance has seen that exact request (so a retry can succeed and identical
members still answer differently). Asked to judge (the system prompt starts with one of
``fusion.judge``'s markers), it replies with a valid verdict, analysis or synthesis.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from fusion import judge
from fusion.errors import ProviderError, TruncatedStream
from fusion.providers.base import Provider, Timeouts
from fusion.tokens import estimate_prompt_tokens
from fusion.types import ApiKey, ChatRequest, Message, StreamEnd, StreamItem, TextDelta, Usage


@dataclass(frozen=True)
class SimProfile:
    ttft_s: float = 0.2
    tokens_per_s: float = 80.0
    answer_tokens: int = 70
    failure_rate: float = 0.0
    truncate_rate: float = 0.0
    hang: bool = False


PRESETS: dict[str, SimProfile] = {
    "sim-fast": SimProfile(ttft_s=0.08, tokens_per_s=250.0, answer_tokens=60),
    "sim-balanced": SimProfile(ttft_s=0.3, tokens_per_s=90.0, answer_tokens=90),
    "sim-slow": SimProfile(ttft_s=0.8, tokens_per_s=30.0, answer_tokens=110),
    "sim-flaky": SimProfile(ttft_s=0.15, tokens_per_s=120.0, failure_rate=0.5),
    "sim-judge": SimProfile(ttft_s=0.1, tokens_per_s=300.0),
    "sim-hang": SimProfile(ttft_s=0.05, hang=True),
}
DEFAULT_PROFILE = SimProfile()

# Short names usable in a model name or the options.
_ALIASES = {
    "ttft": "ttft_s",
    "tps": "tokens_per_s",
    "tokens": "answer_tokens",
    "fail": "failure_rate",
    "truncate": "truncate_rate",
}
_PROFILE_FIELDS = {f.name for f in fields(SimProfile)}
_PROVIDER_OPTIONS = {"seed", "models"}


def _coerce(name: str, value: Any) -> Any:
    if name == "hang":
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes", ""}
    if name == "answer_tokens":
        return int(value)
    return float(value)


def _apply(profile: SimProfile, params: Mapping[str, Any]) -> SimProfile:
    changes = {}
    for raw, value in params.items():
        name = _ALIASES.get(raw, raw)
        if name not in _PROFILE_FIELDS:
            raise ValueError(f"unknown simulated option {raw!r}")
        changes[name] = _coerce(name, value)
    return replace(profile, **changes)


def parse_model(model: str, options: Mapping[str, Any] | None = None) -> SimProfile | None:
    """The profile for ``model``, or None when it is not a simulated model."""
    base, _, inline = model.partition("@")
    profile = PRESETS.get(base)
    if profile is None:
        if not base.startswith("sim"):
            return None
        profile = DEFAULT_PROFILE
    if options:
        profile = _apply(profile, {k: v for k, v in options.items() if k not in _PROVIDER_OPTIONS})
    if inline:
        params = {}
        for part in inline.split(","):
            key, _, value = part.partition("=")
            params[key.strip()] = value.strip()
        profile = _apply(profile, params)
    return profile


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class SimulatedProvider(Provider):
    kind = "simulated"

    def __init__(
        self,
        *,
        name: str,
        timeouts: Timeouts | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name=name, timeouts=timeouts)
        self.options = dict(options or {})
        # Validate now, so a bad pool configuration fails when it is loaded, not mid-run.
        parse_model("sim", self.options)
        self.seed = str(self.options.get("seed", 0))
        self._seen: Counter[str] = Counter()

    async def list_models(self, key: ApiKey | None) -> list[str]:
        models = self.options.get("models")
        return [str(m) for m in models] if models else list(PRESETS)

    async def stream(self, request: ChatRequest, key: ApiKey | None) -> AsyncIterator[StreamItem]:
        profile = parse_model(request.model, self.options)
        if profile is None:
            raise ProviderError(
                "unknown simulated model",
                provider=self.name,
                model=request.model,
                permanent=True,
                status=404,
            )
        fingerprint = json.dumps(
            [request.model, request.temperature, [(m.role, m.content) for m in request.messages]]
        )
        occurrence = self._seen[fingerprint]
        self._seen[fingerprint] += 1
        rng = _rng(self.seed, fingerprint, occurrence)
        label = request.model.partition("@")[0]

        await asyncio.sleep(profile.ttft_s)
        if rng.random() < profile.failure_rate:
            raise ProviderError(
                "simulated overload",
                provider=self.name,
                model=request.model,
                permanent=False,
                status=503,
            )
        text = _reply(label, request, rng, profile.answer_tokens)
        if request.max_tokens is not None:
            text = "".join(_tokens(text)[: request.max_tokens])
        tokens = _tokens(text)
        cut = len(tokens) // 2 if rng.random() < profile.truncate_rate else None
        if profile.hang:
            yield TextDelta(tokens[0])
            await asyncio.Event().wait()  # until cancelled

        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        limit = len(tokens) if cut is None else cut
        while sent < limit:
            if profile.tokens_per_s > 0:
                due = min(limit, sent + 1 + int((loop.time() - start) * profile.tokens_per_s))
            else:
                due = limit
            yield TextDelta("".join(tokens[sent:due]))
            sent = due
            if sent < limit and profile.tokens_per_s > 0:
                wait = start + sent / profile.tokens_per_s - loop.time()
                await asyncio.sleep(max(wait, 0.0))
        if cut is not None:
            raise TruncatedStream(
                "simulated stream cut before its end",
                provider=self.name,
                model=request.model,
                permanent=False,
            )
        input_tokens = estimate_prompt_tokens(request.messages)
        output_tokens = len(tokens)
        finish = (
            "length"
            if request.max_tokens is not None and len(tokens) >= request.max_tokens
            else "stop"
        )
        yield StreamEnd(finish, Usage(input_tokens, output_tokens))


# --- what the simulated models say -----------------------------------------------------------

_STOP_WORDS = """
about above after again also another because been before being below between both could does
doing down during each from further have having here into itself just more most other over same
should some such than that their them then there these they this those through under until very
what when where which while will with would your please explain tell give write describe
"""
_STOP = frozenset(_STOP_WORDS.split())

_OPENERS = [
    "Here is a simulated answer about {topic}.",
    "In short, {topic} comes down to a few points (simulated).",
    "A simulated take on {topic}:",
    "Simulated answer: let us look at {topic} step by step.",
]
_SENTENCES = [
    "The key idea is that {a} depends on {b}, so start there.",
    "A common mistake is to treat {a} and {b} as the same thing.",
    "In practice, {a} matters most when {b} is under pressure.",
    "One useful check is to compare {a} against a simple baseline.",
    "Trade-offs: more {a} usually costs some {b}.",
    "If in doubt, measure {a} before changing {b}.",
    "An example makes it concrete: picture {a} growing while {b} stays fixed.",
    "Experts disagree on {a}, but most accept that {b} is the bottleneck.",
    "The short version: {a} first, {b} second, and verify both.",
    "Keep an eye on edge cases where {a} is empty or {b} is unknown.",
]
_CLOSERS = [
    "(This text was generated by a simulated model, not a real one.)",
    "(Simulated output: no real model was called.)",
]


def _tokens(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text)


def _keywords(text: str) -> list[str]:
    words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]{3,}", text)]
    seen = [w for w in dict.fromkeys(words) if w not in _STOP]
    return seen[:6] or ["the question"]


def _last(messages: tuple[Message, ...], role: str) -> str:
    return next((m.content for m in reversed(messages) if m.role == role), "")


def _strip_label(text: str) -> str:
    return re.sub(r"^\[simulated [^\]]*\]\s*", "", text.strip())


def _first_sentence(text: str) -> str:
    body = re.sub(r"^Revised answer \(round \d+\):\s*", "", _strip_label(text))
    m = re.match(r"(.+?[.!?])(\s|$)", body, re.S)
    return (m.group(1) if m else body[:120]).strip()


def _reply(model: str, request: ChatRequest, rng: random.Random, length: int) -> str:
    system = next((m.content for m in request.messages if m.role == "system"), "")
    user = _last(request.messages, "user")
    for marker, write in (
        (judge.SCORE_MARKER, _score_reply),
        (judge.ANALYSIS_MARKER, _analysis_reply),
        (judge.SYNTHESIS_MARKER, _synthesis_reply),
    ):
        if system.startswith(marker):
            return f"[simulated {model}] " + write(user, model, rng)
    if user.startswith(judge.DEBATE_MARKER):
        return _debate_reply(model, request, rng, length)
    return _answer(model, user, rng, length, request.temperature)


def _answer(
    model: str, question: str, rng: random.Random, length: int, temperature: float | None
) -> str:
    words = _keywords(question)
    topic = " ".join(words[:2])
    # Higher temperatures draw from a wider pool of sentences.
    spread = len(_SENTENCES) if (temperature or 0.7) >= 0.5 else 5
    parts = [f"[simulated {model}]", rng.choice(_OPENERS).format(topic=topic)]
    count = len(" ".join(parts).split())
    while count < length:
        a, b = rng.choice(words), rng.choice(words)
        sentence = _SENTENCES[rng.randrange(spread)].format(a=a, b=b)
        parts.append(sentence)
        count += len(sentence.split())
    parts.append(rng.choice(_CLOSERS))
    return " ".join(parts)


def _debate_reply(model: str, request: ChatRequest, rng: random.Random, length: int) -> str:
    own = _strip_label(_last(request.messages, "assistant"))
    m = re.search(r"Round (\d+)", _last(request.messages, "user"))
    rnd = m.group(1) if m else "?"
    question = next((x.content for x in request.messages if x.role == "user"), "")
    topic = " ".join(_keywords(question)[:2])
    tweak = rng.choice(
        [
            f"Having weighed the other answers, I keep my view on {topic}, stated more carefully.",
            f"The other answers convinced me to add a caveat about {topic}.",
            f"After the critique, the main correction concerns {topic}.",
        ]
    )
    return f"[simulated {model}] Revised answer (round {rnd}): {tweak} {own}"


def _answers(user: str) -> list[tuple[str, str]]:
    return re.findall(r'<answer id="([A-Z])">\n(.*?)\n</answer>', user, re.S)


def _question(user: str) -> str:
    m = re.search(r"<question>\n(.*?)\n</question>", user, re.S)
    return m.group(1) if m else user


def _scores(answers: list[tuple[str, str]], model: str) -> dict[str, float]:
    # Depends on the answer's text, not its position, so swapped passes mostly agree.
    return {label: round(5.0 + 4.5 * _rng(model, text).random(), 1) for label, text in answers}


def _score_payload(user: str, model: str) -> dict[str, Any]:
    answers = _answers(user)
    scores = _scores(answers, model)
    ranked = sorted(scores, key=lambda k: -scores[k])
    winner = ranked[0] if ranked else "A"
    margin = scores[winner] - scores[ranked[1]] if len(ranked) > 1 else 5.0
    return {
        "scores": scores,
        "winner": winner,
        "confidence": round(min(0.95, 0.5 + margin / 10), 2),
        "rationale": f"Simulated judgement: answer {winner} reads as the most complete.",
    }


def _score_reply(user: str, model: str, rng: random.Random) -> str:
    payload = _score_payload(user, model)
    # Prose around a fenced block, as real judges often do; the parser must cope.
    return f"My assessment follows.\n```json\n{json.dumps(payload)}\n```"


def _analysis_reply(user: str, model: str, rng: random.Random) -> str:
    payload = _score_payload(user, model)
    answers = _answers(user)
    topic = " ".join(_keywords(_question(user))[:2])
    payload |= {
        "consensus": [f"All answers address {topic}."],
        "contradictions": [f"They weigh the trade-offs of {topic} differently."]
        if len(answers) > 1
        else [],
        "unique_insights": {label: [_first_sentence(text)] for label, text in answers},
        "blind_spots": [f"None of them quantifies {topic} (simulated)."],
    }
    return f"```json\n{json.dumps(payload)}\n```"


def _synthesis_reply(user: str, model: str, rng: random.Random) -> str:
    topic = " ".join(_keywords(_question(user))[:2])
    points = [_first_sentence(text) for _, text in _answers(user)]
    body = " ".join(dict.fromkeys(points))
    return f"Merged answer on {topic}: {body} Taken together, these points cover the question."
