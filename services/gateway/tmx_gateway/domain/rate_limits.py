"""Per-tenant rate limits: requests and tokens per minute, as token buckets.

Each limit is a bucket holding a minute's allowance that refills continuously, so a tenant may burst up to its
limit and then proceeds at the limit's rate. A request reserves its tokens when admitted (its prompt estimate plus
its `max_tokens`, as OpenAI counts them) and is settled against what the backend reports once it finishes: unused
tokens flow back, extra ones are charged. Limits are per gateway replica: the workers of one gateway share their
spend (`journal` reports this worker's, `debit` takes in the others'). Pure: callers pass `now`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Bucket:
    per_minute: float
    level: float = field(init=False)  # starts full: a minute's allowance
    at: float | None = None

    def __post_init__(self) -> None:
        self.level = self.per_minute

    def refill(self, now: float) -> float:
        if self.at is not None:
            self.level = min(self.per_minute, self.level + (now - self.at) * self.per_minute / 60)
        self.at = now
        return self.level

    def take(self, amount: float) -> None:
        """Charge `amount` (< 0: give it back, never past a minute's allowance); the level may go below zero."""
        self.level = min(self.per_minute, self.level - amount)

    def wait_s(self, amount: float) -> float:
        """Seconds until `amount` is available (after `refill`)."""
        return max(0.0, (amount - self.level) * 60 / self.per_minute)


@dataclass(frozen=True)
class Admission:
    """A request let through: what it reserved, and what the tenant has left (for the x-ratelimit headers)."""
    tokens: int
    limit_requests: int
    remaining_requests: int
    limit_tokens: int
    remaining_tokens: int


@dataclass(frozen=True)
class Refusal:
    limit: str  # "requests" or "tokens"
    message: str
    retry_after_s: float  # 0 when waiting cannot help (the request alone exceeds the limit)


UNLIMITED = Admission(0, 0, 0, 0, 0)


class RateLimiter:
    def __init__(self, journal: Callable[[str, int, int], None] | None = None) -> None:
        self.journal = journal  # told (tenant, requests, tokens) of every spend and settlement made here
        self._limits: dict[str, tuple[int, int]] = {}
        self._requests: dict[str, Bucket] = {}
        self._tokens: dict[str, Bucket] = {}

    def configure(self, limits: dict[str, tuple[int, int]]) -> None:
        """Adopt tenant -> (requests per minute, tokens per minute), 0 meaning unlimited. A limit that
        is unchanged keeps its bucket (a fleet-file reload does not hand out a fresh minute)."""
        for tenant, (rpm, tpm) in limits.items():
            old_rpm, old_tpm = self._limits.get(tenant, (0, 0))
            if rpm != old_rpm:
                self._set(self._requests, tenant, rpm)
            if tpm != old_tpm:
                self._set(self._tokens, tenant, tpm)
        for tenant in set(self._limits) - set(limits):
            self._requests.pop(tenant, None)
            self._tokens.pop(tenant, None)
        self._limits = dict(limits)

    @staticmethod
    def _set(buckets: dict[str, Bucket], tenant: str, per_minute: int) -> None:
        if per_minute:
            buckets[tenant] = Bucket(per_minute)
        else:
            buckets.pop(tenant, None)

    def admit(self, tenant: str, tokens: int, now: float) -> Admission | Refusal:
        """Let a request needing about `tokens` through, or say which limit refuses it and for how long. A request
        needing none (it runs no model) is held to the requests limit alone, even when the tokens are spent."""
        requests, budget = self._requests.get(tenant), self._tokens.get(tenant)
        if requests is None and budget is None:
            return UNLIMITED
        if budget is not None and tokens > budget.per_minute:
            return Refusal("tokens", f"request needs about {tokens} tokens (prompt + max_tokens), more than tenant "
                                     f"`{tenant}`'s limit of {budget.per_minute:.0f} tokens per minute", 0.0)
        wait, limit = 0.0, ""
        if requests is not None and requests.refill(now) < 1:
            wait = requests.wait_s(1)
            limit = "requests"
        if budget is not None and budget.refill(now) < tokens and tokens > 0 and budget.wait_s(tokens) > wait:
            wait = budget.wait_s(tokens)
            limit = "tokens"
        if wait > 0:
            per_minute = requests.per_minute if limit == "requests" else budget.per_minute
            return Refusal(limit, f"tenant `{tenant}` is over its limit of {per_minute:.0f} {limit} per minute; "
                                  f"retry in {wait:.1f} s", wait)
        if requests is not None:
            requests.take(1)
        if budget is not None:
            budget.take(tokens)
        if self.journal is not None:
            self.journal(tenant, 1 if requests is not None else 0, tokens if budget is not None else 0)
        return Admission(tokens if budget is not None else 0,
                         int(requests.per_minute) if requests else 0, max(int(requests.level), 0) if requests else 0,
                         int(budget.per_minute) if budget else 0, max(int(budget.level), 0) if budget else 0)

    def settle(self, tenant: str, reserved: int, used: int) -> None:
        """A request admitted with `reserved` tokens finished having used `used`: refund or charge the difference
        (the bucket may go below zero: the tenant then waits longer)."""
        budget = self._tokens.get(tenant)
        if budget is not None and reserved:
            budget.take(used - reserved)
            if self.journal is not None and used != reserved:
                self.journal(tenant, 0, used - reserved)

    def debit(self, tenant: str, requests: int, tokens: int, now: float) -> None:
        """Spend made elsewhere (another worker of this gateway) against this tenant's limits; `tokens` < 0 is a
        refund. Not journaled: it is not this worker's."""
        for bucket, amount in ((self._requests.get(tenant), requests), (self._tokens.get(tenant), tokens)):
            if bucket is not None and amount:
                bucket.refill(now)
                bucket.take(amount)
