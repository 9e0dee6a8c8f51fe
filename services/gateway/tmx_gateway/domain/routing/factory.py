from __future__ import annotations

from tmx_gateway.domain.routing.least_inflight import LeastInflight
from tmx_gateway.domain.routing.policy import Policy

_POLICIES = {LeastInflight.name: LeastInflight}


def policy_names() -> list[str]:
    return sorted(_POLICIES)


def build_policy(name: str) -> Policy:
    try:
        return _POLICIES[name]()
    except KeyError:
        raise ValueError(f"unknown routing strategy {name!r}; known: {', '.join(policy_names())}") from None
