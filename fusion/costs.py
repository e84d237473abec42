"""Prices and costs. Money is ``Decimal``; ``None`` means "unpriced", never zero.

``DEFAULT_PRICES`` holds public list prices in USD per million tokens (standard tier, short
prompts, no caching or batch discounts), as published by the vendors in 2025. The workbench
seeds its admin-editable price table from it and passes that table as ``prices``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from fusion.tokens import DEFAULT_MAX_TOKENS
from fusion.types import Usage

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens."""

    input_per_million: Decimal
    output_per_million: Decimal


def _p(inp: str, out: str) -> Price:
    return Price(Decimal(inp), Decimal(out))


DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-4o": _p("2.50", "10.00"),
    "gpt-4o-mini": _p("0.15", "0.60"),
    "gpt-4.1": _p("2.00", "8.00"),
    "gpt-4.1-mini": _p("0.40", "1.60"),
    "gpt-4.1-nano": _p("0.10", "0.40"),
    "gpt-5": _p("1.25", "10.00"),
    "gpt-5-mini": _p("0.25", "2.00"),
    "gpt-5-nano": _p("0.05", "0.40"),
    "o3": _p("2.00", "8.00"),
    "o3-mini": _p("1.10", "4.40"),
    "o4-mini": _p("1.10", "4.40"),
    # Anthropic
    "claude-opus-4": _p("15.00", "75.00"),
    "claude-opus-4-1": _p("15.00", "75.00"),
    "claude-sonnet-4": _p("3.00", "15.00"),
    "claude-sonnet-4-5": _p("3.00", "15.00"),
    "claude-haiku-4-5": _p("1.00", "5.00"),
    "claude-3-7-sonnet": _p("3.00", "15.00"),
    "claude-3-5-sonnet": _p("3.00", "15.00"),
    "claude-3-5-haiku": _p("0.80", "4.00"),
    "claude-3-haiku": _p("0.25", "1.25"),
    # Google (prompts up to 200k tokens)
    "gemini-2.5-pro": _p("1.25", "10.00"),
    "gemini-2.5-flash": _p("0.30", "2.50"),
    "gemini-2.5-flash-lite": _p("0.10", "0.40"),
    "gemini-2.0-flash": _p("0.10", "0.40"),
    # DeepSeek
    "deepseek-chat": _p("0.27", "1.10"),
    "deepseek-reasoner": _p("0.55", "2.19"),
    # Meta Llama as hosted by Groq (Together and others charge a little more)
    "llama-3.3-70b": _p("0.59", "0.79"),
    "llama-3.3-70b-versatile": _p("0.59", "0.79"),
    "llama-3.3-70b-instruct": _p("0.59", "0.79"),
    "llama-3.1-8b-instant": _p("0.05", "0.08"),
    # Mistral
    "mistral-large": _p("2.00", "6.00"),
    "mistral-small": _p("0.10", "0.30"),
    # The simulated provider's models: a FICTITIOUS price, so that the offline demo shows
    # costs and budgets at work. No money is ever spent on them.
    "sim-*": _p("0.50", "1.50"),
}

_ZERO = Price(Decimal(0), Decimal(0))
# Date and version suffixes that do not change the price: -20250514, -2024-08-06, -latest,
# -001, -preview-05-20, -exp.
_SUFFIX = re.compile(
    r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest|\d{3}|exp|preview(?:-\d{2}-\d{2})?|\d{4})$"
)


def _candidates(model: str) -> list[str]:
    """``model`` and its tolerant forms, most specific first."""
    name = model.strip().lower()
    names = [name]
    if "/" in name:  # "openai/gpt-4o", "models/gemini-2.5-pro", "meta-llama/llama-3.3-70b-…"
        name = name.rsplit("/", 1)[1]
        names.append(name)
    while True:
        shorter = _SUFFIX.sub("", name)
        if shorter == name or not shorter:
            return names
        name = shorter
        names.append(name)


class PriceBook(Mapping[str, Price]):
    """A price table made ready for lookups: normalised once, wildcards sorted once, and every
    model's answer kept. The engine makes one per run; it reads like the table it was made of.
    """

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        source = DEFAULT_PRICES if prices is None else prices
        self._table = {k.strip().lower(): v for k, v in source.items()}
        self._wildcards = sorted((k for k in self._table if k.endswith("*")), key=len, reverse=True)
        self._found: dict[str, Price | None] = {}

    def __getitem__(self, key: str) -> Price:
        return self._table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def lookup(self, model: str) -> Price | None:
        try:
            return self._found[model]
        except KeyError:
            found = self._found[model] = self._lookup(model)
            return found

    def _lookup(self, model: str) -> Price | None:
        base, _, variant = model.partition(":")
        if variant.strip().lower() == "free":
            return _ZERO
        table = self._table
        names = _candidates(model) + ([] if base == model else _candidates(base))
        for name in names:
            if name in table:
                return table[name]
        for name in names:
            for pattern in self._wildcards:
                if name.startswith(pattern[:-1]):
                    return table[pattern]
        return None


_DEFAULT_BOOK = PriceBook()


def price_book(prices: Mapping[str, Price] | None) -> PriceBook:
    """``prices`` ready for lookups (itself if it already is a ``PriceBook``)."""
    if prices is None:
        return _DEFAULT_BOOK
    return prices if isinstance(prices, PriceBook) else PriceBook(prices)


def price_for(model: str, prices: Mapping[str, Price] | None = None) -> Price | None:
    """The price of ``model`` from ``prices`` (default: ``DEFAULT_PRICES``), or None.

    Tries the exact id, then without a provider prefix, then without date/version suffixes,
    then ``prefix*`` wildcard entries (longest prefix wins). ``…:free`` (OpenRouter) is free.
    Pass a ``PriceBook`` when looking up many models in one table.
    """
    return price_book(prices).lookup(model)


def cost_for(usage: Usage, model: str, prices: Mapping[str, Price] | None = None) -> Decimal | None:
    """What a call cost: the provider's own figure if it gave one, else tokens times price."""
    if usage.reported_cost is not None:
        return usage.reported_cost
    price = price_for(model, prices)
    if price is None:
        return None
    return (
        usage.input_tokens * price.input_per_million
        + usage.output_tokens * price.output_per_million
    ) / MILLION


def estimate_cost(
    input_tokens: int,
    max_output_tokens: int | None,
    model: str,
    prices: Mapping[str, Price] | None = None,
) -> Decimal | None:
    """The most a call can cost (all of ``max_output_tokens`` used): what a budget reserves."""
    price = price_for(model, prices)
    if price is None:
        return None
    output = DEFAULT_MAX_TOKENS if max_output_tokens is None else max_output_tokens
    return (input_tokens * price.input_per_million + output * price.output_per_million) / MILLION
