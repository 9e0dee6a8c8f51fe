from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tmx_gateway.domain.fleet import Backend


@dataclass(frozen=True)
class RouteRequest:
    model: str
    endpoint: str
    prompt_chars: int = 0
    session_key: str = ""
    prompt_text: str = ""  # rendered prompt, for prefix-aware routing ("" when the policy does not need it)
    prompt_tokens: int = 0  # estimate
    max_tokens: int = 0


@dataclass(frozen=True)
class Decision:
    backend_id: str
    strategy: str
    reason: str
    scores: dict[str, float] = field(default_factory=dict)
    predicted_cached_tokens: int = 0  # prefix_aware: what it expects the backend to have cached
    indexed_tokens: int = 0  # prefix_aware: what its index holds of the prompt there, presumed cached there or not
    prefix_age: int = 0  # prefix_aware: the age of the deepest of those blocks there (`PrefixIndex.age`)
    prefix_blocks: list[int] = field(default_factory=list)  # the prompt's block hashes the policy recorded there
    kind: str = ""  # prefix_aware: which rule decided (cached, saturated, cold, imbalanced); counted in /metrics


class Policy(Protocol):
    name: str
    needs_prompt: bool

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        """Pick one of `candidates` (never empty)."""
        ...


class ScoringPolicy(Protocol):
    """A policy that ranks by a score per backend (lower is better); `multi` blends these."""

    name: str
    needs_prompt: bool

    def scores(self, request: RouteRequest, candidates: Sequence[Backend]) -> dict[str, float]:
        ...


def prefix_indexes(policy) -> list:
    """The prefix indexes a policy keeps (prefix_aware its own, multi its parts'); none for the others."""
    indexes = getattr(policy, "prefix_indexes", None)
    return indexes() if indexes is not None else []


class TieBreaker:
    """Lowest score wins; ties rotate so an idle fleet still spreads load."""

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, candidates: Sequence[Backend], scores: dict[str, float]) -> Backend:
        best = min(scores[b.id] for b in candidates)
        tied = [b for b in candidates if scores[b.id] <= best + 1e-12]
        self._turn += 1
        return tied[self._turn % len(tied)]
