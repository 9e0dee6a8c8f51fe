"""Per-tenant token buckets: bursts up to the limit, refills at its rate, reservations settled."""

import pytest

from tmx_config import FleetFile
from tmx_config.fleet import TenantSpec
from tmx_gateway.domain.rate_limits import UNLIMITED, Admission, RateLimiter, Refusal
from tmx_gateway.domain.tenancy import Tenancy


def limiter(**limits) -> RateLimiter:
    rl = RateLimiter()
    rl.configure(limits)
    return rl


def test_unlimited_tenants_pass_without_bookkeeping():
    rl = limiter(acme=(0, 0))
    assert all(rl.admit(t, 10**9, 0.0) is UNLIMITED for t in ("acme", "default"))


def test_requests_per_minute_burst_then_refill_at_the_limits_rate():
    rl = limiter(acme=(3, 0))
    assert [type(rl.admit("acme", 10, 100.0)) for _ in range(4)] == [Admission] * 3 + [Refusal]
    refusal = rl.admit("acme", 10, 100.0)
    assert refusal.limit == "requests" and refusal.retry_after_s == pytest.approx(20.0)  # 1 of 3 per minute
    assert isinstance(rl.admit("acme", 10, 110.0), Refusal)  # half a request refilled
    admitted = rl.admit("acme", 10, 120.0)
    assert isinstance(admitted, Admission) and admitted.limit_requests == 3 and admitted.remaining_requests == 0
    assert isinstance(rl.admit("acme", 10, 10_000.0), Admission)  # refills to the limit, no further
    assert [type(rl.admit("acme", 10, 10_000.0)) for _ in range(3)] == [Admission] * 2 + [Refusal]


def test_tokens_are_reserved_then_settled_with_what_was_used():
    rl = limiter(acme=(0, 1000))
    first = rl.admit("acme", 400, 0.0)
    assert first.tokens == 400 and first.remaining_tokens == 600
    rl.admit("acme", 400, 0.0)
    refusal = rl.admit("acme", 400, 0.0)  # 200 left of 1000 per minute: 200 more take 12 s
    assert refusal.limit == "tokens" and refusal.retry_after_s == pytest.approx(12.0)
    rl.settle("acme", 400, 50)
    rl.settle("acme", 400, 50)  # both used 50 of their 400: 900 are back
    assert rl.admit("acme", 400, 0.0).remaining_tokens == 500
    rl.settle("acme", 400, 1500)  # used more than reserved: the bucket goes below zero, the tenant waits
    assert rl.admit("acme", 1, 0.0).retry_after_s == pytest.approx((1 + 600) * 60 / 1000)


def test_a_request_needing_no_tokens_is_held_to_the_requests_limit_alone():
    """Token counting runs no model: with a tenant's tokens spent (the bucket below zero), it is still admitted
    and spends none; it still counts against the requests per minute."""
    rl = limiter(acme=(0, 1000), beta=(1, 1000))
    rl.admit("acme", 900, 0.0)
    rl.settle("acme", 900, 1500)  # 500 tokens below zero
    free = rl.admit("acme", 0, 0.0)
    assert isinstance(free, Admission) and free.tokens == 0 and free.remaining_tokens == 0
    assert rl.admit("acme", 1, 0.0).retry_after_s == pytest.approx((1 + 500) * 60 / 1000)  # none were spent
    assert isinstance(rl.admit("beta", 0, 0.0), Admission)
    assert rl.admit("beta", 0, 0.0).limit == "requests"


def test_a_request_bigger_than_the_whole_limit_is_refused_without_retry_after():
    refusal = limiter(acme=(0, 1000)).admit("acme", 1001, 0.0)
    assert isinstance(refusal, Refusal) and refusal.retry_after_s == 0 and "1001" in refusal.message


def test_the_longer_wait_of_the_two_limits_is_the_one_reported():
    rl = limiter(acme=(60, 600))  # a request per second, 10 tokens per second
    rl.admit("acme", 600, 0.0)
    refusal = rl.admit("acme", 100, 0.0)  # requests would allow it; tokens need 10 s
    assert refusal.limit == "tokens" and refusal.retry_after_s == pytest.approx(10.0)


def test_reconfiguring_keeps_the_buckets_of_tenants_whose_limits_did_not_change():
    rl = limiter(acme=(1, 0), beta=(1, 100))
    rl.admit("acme", 1, 0.0), rl.admit("beta", 100, 0.0)
    rl.configure({"acme": (1, 0), "beta": (2, 100)})
    assert isinstance(rl.admit("acme", 1, 0.0), Refusal)  # same limit: still spent
    refusal = rl.admit("beta", 1, 0.0)  # a new request limit is a fresh bucket; the unchanged token limit is not
    assert refusal.limit == "tokens"
    rl.configure({})
    assert rl.admit("acme", 1, 0.0) is UNLIMITED


def test_tenancy_reads_the_limits_from_the_fleet_file():
    fleet = FleetFile(tenants=(TenantSpec(name="acme", api_keys=("k",), rpm_limit=5, tpm_limit=100),
                               TenantSpec(name="beta", api_keys=("j",))))
    assert Tenancy(fleet).limits == {"acme": (5, 100), "beta": (0, 0)}
    with pytest.raises(ValueError):
        TenantSpec(name="acme", rpm_limit=-1)


def test_the_journal_hears_this_workers_spend_and_settlements_and_debit_takes_in_a_peers():
    heard = []
    rl = RateLimiter(journal=lambda *spend: heard.append(spend))
    rl.configure({"acme": (10, 1000), "tokens-only": (0, 1000)})
    rl.admit("acme", 300, 0.0)
    rl.settle("acme", 300, 120)  # 180 flow back
    rl.settle("acme", 300, 300)  # as reserved: nothing to tell
    rl.admit("tokens-only", 50, 0.0)
    rl.admit("unlimited", 50, 0.0)
    assert heard == [("acme", 1, 300), ("acme", 0, -180), ("tokens-only", 0, 50)]

    rl.debit("acme", 8, 700, 0.0)  # another worker's spend: 10 - 1 - 8 requests, 1000 - 120 - 700 tokens left
    admitted = rl.admit("acme", 100, 0.0)
    assert admitted.remaining_requests == 0 and admitted.remaining_tokens == 80
    assert rl.admit("acme", 100, 0.0).limit == "requests"
    rl.debit("acme", 0, -5000, 0.0)  # a peer's refund never fills past a minute's allowance
    assert rl.admit("acme", 1000, 60.0).remaining_tokens == 0
    assert heard[3:] == [("acme", 1, 100), ("acme", 1, 1000)]  # its own admissions; debits are not its spend
