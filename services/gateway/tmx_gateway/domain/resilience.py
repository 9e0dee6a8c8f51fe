"""Failover's guard rails, pure (callers pass `now`):

- CircuitBreaker, one per backend: `threshold` consecutive failures (or one refused connection) open it for
  a cooldown that doubles on each re-open (up to `max_cooldown_s`); then it lets exactly one trial request
  through (half-open): success closes it, failure re-opens it. 4xx responses are never failures.
- RetryBudget: retries may add at most `ratio` of the requests seen (plus a small floor per second), so a
  fleet-wide outage does not turn into a retry storm.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    threshold: int = 3
    cooldown_s: float = 2.0
    max_cooldown_s: float = 30.0
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_until: float = 0.0
    current_cooldown_s: float = 0.0
    trial_in_flight: bool = False

    def allows(self, now: float) -> bool:
        """May a request go to this backend now? (Does not reserve the half-open trial: see `acquire`.)"""
        if self.state == BreakerState.CLOSED:
            return True
        if self.state == BreakerState.OPEN and now >= self.opened_until:
            self.state = BreakerState.HALF_OPEN
            self.trial_in_flight = False
        return self.state == BreakerState.HALF_OPEN and not self.trial_in_flight

    def acquire(self, now: float) -> None:
        if self.allows(now) and self.state == BreakerState.HALF_OPEN:
            self.trial_in_flight = True

    def success(self) -> None:
        self.state, self.failures, self.current_cooldown_s, self.trial_in_flight = BreakerState.CLOSED, 0, 0.0, False

    def failure(self, now: float, *, hard: bool = False) -> None:
        """`hard`: the backend refused the connection — open at once instead of counting to the threshold."""
        self.failures += 1
        if self.state == BreakerState.HALF_OPEN or hard or self.failures >= self.threshold:
            self.current_cooldown_s = min(self.max_cooldown_s, (self.current_cooldown_s * 2) or self.cooldown_s)
            self.state, self.opened_until, self.trial_in_flight = BreakerState.OPEN, now + self.current_cooldown_s, False

    def release_trial(self) -> None:
        """A half-open trial that ended without a verdict (e.g. the client left): let another one try."""
        self.trial_in_flight = False


@dataclass
class RetryBudget:
    ratio: float = 0.2
    min_per_s: float = 5.0
    cap: float = 100.0
    tokens: float = 10.0
    updated: float = 0.0

    def _refill(self, now: float) -> None:
        if self.updated:
            self.tokens = min(self.cap, self.tokens + (now - self.updated) * self.min_per_s)
        self.updated = now

    def on_request(self, now: float) -> None:
        self._refill(now)
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def try_spend(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:  # ten requests at 0.2 must buy two retries despite float rounding
            self.tokens -= 1.0
            return True
        return False
