"""Fusion strategies: what members and the judge are asked, and how a verdict is reached."""

from __future__ import annotations

from fusion.strategies.base import JudgeCall, JudgeCandidate, Strategy, get_strategy

__all__ = ["JudgeCall", "JudgeCandidate", "Strategy", "get_strategy"]
