"""A backend's health state machine, driven by probe results.

    UNKNOWN --first success--> HEALTHY
    UNKNOWN/HEALTHY --fall_threshold consecutive failures--> UNHEALTHY
    UNHEALTHY --rise_threshold consecutive successes--> HEALTHY

Pure: it returns a Transition when the state changes and never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class State(str, Enum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"


@dataclass(frozen=True)
class Thresholds:
    fall: int = 3
    rise: int = 2

    def __post_init__(self) -> None:
        if self.fall < 1 or self.rise < 1:
            raise ValueError("thresholds must be >= 1")


@dataclass(frozen=True)
class Transition:
    previous: State
    current: State
    reason: str


@dataclass
class BackendHealth:
    id: str
    url: str
    models: tuple[str, ...] = ()
    state: State = State.UNKNOWN
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_error: str = ""
    last_probe_ms: int = 0
    last_latency_ms: float = 0.0

    def observe(self, ok: bool, thresholds: Thresholds, *, error: str = "", latency_ms: float = 0.0,
                now_ms: int = 0) -> Transition | None:
        self.last_probe_ms, self.last_latency_ms = now_ms, latency_ms
        previous = self.state
        if ok:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            self.last_error = ""
            if self.state == State.UNKNOWN or (
                self.state == State.UNHEALTHY and self.consecutive_successes >= thresholds.rise
            ):
                self.state = State.HEALTHY
                return Transition(previous, self.state, f"{self.consecutive_successes} good probe(s)")
            return None
        self.consecutive_failures += 1
        self.consecutive_successes = 0
        self.last_error = error
        if self.state in (State.UNKNOWN, State.HEALTHY) and self.consecutive_failures >= thresholds.fall:
            self.state = State.UNHEALTHY
            return Transition(previous, self.state, f"{self.consecutive_failures} failed probes: {error}")
        return None
