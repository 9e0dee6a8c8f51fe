from __future__ import annotations

from tmx_gateway.domain.routing.ewma_latency import EwmaLatency
from tmx_gateway.domain.routing.least_inflight import LeastInflight
from tmx_gateway.domain.routing.multi import Multi
from tmx_gateway.domain.routing.policy import Policy
from tmx_gateway.domain.routing.prefix_aware import PrefixAware
from tmx_gateway.domain.routing.random_choice import RandomChoice
from tmx_gateway.domain.routing.session_affinity import SessionAffinity
from tmx_gateway.domain.routing.token_aware import TokenAware
from tmx_gateway.domain.routing.weighted_round_robin import WeightedRoundRobin

_SIMPLE = {p.name: p for p in (LeastInflight, EwmaLatency, TokenAware, WeightedRoundRobin, RandomChoice,
                               SessionAffinity, PrefixAware)}
_SCORING = {LeastInflight.name, EwmaLatency.name, TokenAware.name, PrefixAware.name}
DEFAULT_MULTI = {"prefix_aware": 1.0, "least_inflight": 1.0}


def policy_names() -> list[str]:
    return sorted([*_SIMPLE, Multi.name])


def build_policy(name: str, multi_weights: dict[str, float] | None = None) -> Policy:
    if name == Multi.name:
        weights = multi_weights or DEFAULT_MULTI
        unknown = set(weights) - _SCORING
        if unknown:
            raise ValueError(f"multi can blend only {', '.join(sorted(_SCORING))}; not {', '.join(sorted(unknown))}")
        return Multi([(_SIMPLE[n](), w) for n, w in weights.items()])
    try:
        return _SIMPLE[name]()
    except KeyError:
        raise ValueError(f"unknown routing strategy {name!r}; known: {', '.join(policy_names())}") from None
