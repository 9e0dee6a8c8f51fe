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


@dataclass(frozen=True)
class Decision:
    backend_id: str
    strategy: str
    reason: str
    scores: dict[str, float] = field(default_factory=dict)


class Policy(Protocol):
    name: str

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        """Pick one of `candidates` (never empty)."""
        ...
