import pytest

from tmx_gateway.domain.resilience import BreakerState, CircuitBreaker, RetryBudget


def test_breaker_opens_after_the_threshold_and_probes_half_open():
    b = CircuitBreaker(threshold=3, cooldown_s=2.0)
    b.failure(0.0), b.failure(0.1)
    assert b.state == BreakerState.CLOSED and b.allows(0.2)
    b.failure(0.2)
    assert b.state == BreakerState.OPEN and not b.allows(1.0)
    assert b.allows(2.2) and b.state == BreakerState.HALF_OPEN  # cooldown over: one trial
    b.acquire(2.2)
    assert not b.allows(2.3)  # only one trial at a time
    b.failure(2.4)
    assert b.state == BreakerState.OPEN and b.opened_until == pytest.approx(2.4 + 4.0)  # cooldown doubled
    assert b.allows(6.5)
    b.acquire(6.5)
    b.success()
    assert b.state == BreakerState.CLOSED and b.current_cooldown_s == 0 and b.allows(6.6)


def test_a_refused_connection_opens_at_once_and_cooldowns_are_capped():
    b = CircuitBreaker(threshold=3, cooldown_s=2.0, max_cooldown_s=5.0)
    b.failure(0.0, hard=True)
    assert b.state == BreakerState.OPEN
    for t in (10.0, 20.0, 30.0):
        b.allows(t)
        b.failure(t)
    assert b.current_cooldown_s == 5.0


def test_a_trial_without_a_verdict_frees_the_slot():
    b = CircuitBreaker(threshold=1, cooldown_s=1.0)
    b.failure(0.0)
    b.allows(1.5)
    b.acquire(1.5)
    assert not b.allows(1.6)
    b.release_trial()
    assert b.allows(1.6)


def test_retry_budget_allows_a_share_of_requests_plus_a_floor():
    budget = RetryBudget(ratio=0.2, min_per_s=0.0, tokens=0.0)
    for _ in range(10):
        budget.on_request(1.0)
    assert budget.try_spend(1.0) and budget.try_spend(1.0) and not budget.try_spend(1.0)  # 10 x 0.2 = 2
    floor = RetryBudget(ratio=0.0, min_per_s=5.0, tokens=0.0)
    floor.on_request(1.0)
    assert not floor.try_spend(1.0) and floor.try_spend(1.2)  # 0.2 s x 5/s = 1 token
