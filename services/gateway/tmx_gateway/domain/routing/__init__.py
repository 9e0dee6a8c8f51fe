"""Routing policies: pure functions of (request, candidate backends, their stats) that pick one and say
why; one module each, built by one factory; a router picks the policy per model pool or per request."""

from tmx_gateway.domain.routing.factory import build_policy, policy_names
from tmx_gateway.domain.routing.policy import Decision, Policy, RouteRequest
from tmx_gateway.domain.routing.router import Router, UnknownStrategy

__all__ = ["Decision", "Policy", "RouteRequest", "Router", "UnknownStrategy", "build_policy", "policy_names"]
