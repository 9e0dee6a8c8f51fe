"""A backend's health state machine, driven by active probes and passive signals from the gateways.

    UNKNOWN    --good probe-->                       HEALTHY
    HEALTHY    --a failure (probe or request)-->     SUSPECT      (still routable)
    SUSPECT    --good probe or good request-->       HEALTHY
    SUSPECT    --`fall` consecutive failures-->      UNHEALTHY
    UNKNOWN    --`fall` consecutive failures-->      UNHEALTHY
    UNHEALTHY  --good probe-->                       RECOVERING   (not routable yet)
    RECOVERING --`rise` consecutive good probes-->   HEALTHY
    RECOVERING --a failure-->                        UNHEALTHY
    any        --drain-->                            DRAINING     (out of rotation on request)
    DRAINING   --undrain-->                          RECOVERING

Only probes bring a backend back: gateways do not send traffic to an unhealthy backend, so their silence
is no evidence. Pure: it returns a Transition when the state changes and never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class State(str, Enum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    SUSPECT = "suspect"
    UNHEALTHY = "unhealthy"
    RECOVERING = "recovering"
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
    passive_failures: int = 0  # all failed requests reported by gateways
    passive_streak: int = 0  # consecutive ones, since the last successful request
    context_length: int = 0
    thresholds: Thresholds | None = None  # per-backend override
    interval_s: float | None = None
    timeout_s: float | None = None

    def _move(self, to: State, reason: str) -> Transition | None:
        if to == self.state:
            return None
        previous, self.state = self.state, to
        return Transition(previous, to, reason)

    def observe(self, ok: bool, thresholds: Thresholds, *, error: str = "", latency_ms: float = 0.0,
                now_ms: int = 0, passive: bool = False) -> Transition | None:
        """Probes and gateways' requests keep separate failure streaks: a backend that answers /health but
        fails requests (a gray failure) still goes down, because a good probe does not erase request
        failures; only a successful request does."""
        t = self.thresholds or thresholds
        if not passive:
            self.last_probe_ms, self.last_latency_ms = now_ms, latency_ms
        if ok:
            if passive:
                self.passive_streak = 0
            else:
                self.consecutive_successes += 1
                self.consecutive_failures = 0
                self.last_error = ""
            if self.state == State.DRAINING:
                return None
            clean = self.consecutive_failures == 0 and self.passive_streak == 0
            if self.state == State.SUSPECT:
                return self._move(State.HEALTHY, "request succeeded" if passive else "probe succeeded") if clean else None
            if passive:
                return None
            if self.state == State.UNKNOWN and clean:
                return self._move(State.HEALTHY, "first good probe")
            if self.state == State.UNHEALTHY:
                if t.rise <= 1:
                    return self._move(State.HEALTHY, "good probe")
                return self._move(State.RECOVERING, "good probe; waiting for more")
            if self.state == State.RECOVERING and self.consecutive_successes >= t.rise:
                return self._move(State.HEALTHY, f"{self.consecutive_successes} consecutive good probes")
            return None
        if passive:
            self.passive_streak += 1
            self.passive_failures += 1
        else:
            self.consecutive_failures += 1
        self.consecutive_successes = 0
        self.last_error = error
        source = "failed requests" if passive else "failed probes"
        streak = self.passive_streak if passive else self.consecutive_failures
        if self.state == State.DRAINING:
            return None
        if self.state == State.RECOVERING:
            return self._move(State.UNHEALTHY, f"failed while recovering: {error}")
        if self.state in (State.HEALTHY, State.SUSPECT, State.UNKNOWN) and streak >= t.fall:
            self.passive_streak = 0  # from here only probes decide, and they start afresh
            return self._move(State.UNHEALTHY, f"{streak} consecutive {source}: {error}")
        if self.state == State.HEALTHY:
            return self._move(State.SUSPECT, f"{source[:-1]}: {error}")
        return None

    def drain(self, drain: bool) -> Transition | None:
        if drain:
            return self._move(State.DRAINING, "drained on request")
        if self.state == State.DRAINING:
            self.consecutive_successes = 0
            return self._move(State.RECOVERING, "undrained; recovering through probes")
        return None
