"""Routing policies: pure functions of (request, candidate backends) that pick one and say why."""

from tmx_gateway.domain.routing.factory import build_policy, policy_names
from tmx_gateway.domain.routing.policy import Decision, Policy, RouteRequest

__all__ = ["Decision", "Policy", "RouteRequest", "build_policy", "policy_names"]
