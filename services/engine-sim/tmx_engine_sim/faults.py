"""Fault injection: the knobs failover tests turn, at start-up or at run time."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields


@dataclass
class Faults:
    error_rate: float = 0.0  # share of requests answered 500 before any work
    stall_s: float = 0.0  # real seconds to wait before answering (headers included)
    drop_after_tokens: int = 0  # streams are cut (connection dropped) after this many tokens; 0 = never
    refuse: bool = False  # stop listening: new connections are refused

    def update(self, changes: dict) -> None:
        known = {f.name: f.type for f in fields(self)}
        unknown = set(changes) - set(known)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            current = getattr(self, name)
            setattr(self, name, type(current)(value))
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be within [0, 1]")

    def should_error(self, rng: random.Random) -> bool:
        return self.error_rate > 0 and rng.random() < self.error_rate

    def as_dict(self) -> dict:
        return asdict(self)
