"""Which policy routes a request: the request's `x-tmx-routing` header, else its model pool's strategy, else
the fleet default. Each (pool, strategy) keeps its own policy instance, so stateful policies (round robin,
prefix index, hash ring) see only their own pool."""

from __future__ import annotations

from collections.abc import Sequence

from tmx_gateway.domain.fleet import Backend
from tmx_gateway.domain.routing.factory import build_policy, policy_names
from tmx_gateway.domain.routing.policy import Decision, Policy, RouteRequest, prefix_indexes


class UnknownStrategy(ValueError):
    pass


class Router:
    def __init__(self, default: str = "least_inflight", per_model: dict[str, str] | None = None,
                 multi_weights: dict[str, float] | None = None) -> None:
        self.default = default
        self.per_model = dict(per_model or {})
        self.multi_weights = multi_weights
        for name in {default, *self.per_model.values()}:
            build_policy(name, multi_weights)  # fail fast on a bad configuration
        self._policies: dict[tuple[str, str], Policy] = {}

    def strategy_for(self, model: str, override: str = "") -> str:
        if override:
            if override not in policy_names():
                raise UnknownStrategy(f"unknown routing strategy {override!r}; known: {', '.join(policy_names())}")
            return override
        return self.per_model.get(model, self.default)

    def policy(self, model: str, override: str = "") -> Policy:
        name = self.strategy_for(model, override)
        key = (model, name)
        if key not in self._policies:
            self._policies[key] = build_policy(name, self.multi_weights)
        return self._policies[key]

    def learn_prefix(self, model: str, strategy: str, backend_id: str, hashes: list[int]) -> None:
        """A prompt prefix routed to `backend_id` by another gateway worker (see `domain.peers`): record it in the
        index this pool's policy keeps, as if this worker had routed it."""
        if strategy in policy_names():
            for index in prefix_indexes(self.policy(model, strategy)):
                index.record(backend_id, hashes)

    def observe(self, model: str, decision: Decision, prompt_tokens: int, cached_share: float) -> None:
        """The backend `decision` chose for `model` answered its prompt (`prompt_tokens`, the gateway's estimate)
        with `cached_share` of it served from its cache (its usage's own count): the deciding policy learns from it,
        if it learns from such (prefix_aware's index, `PrefixAware.observe`)."""
        policy = self._policies.get((model, decision.strategy))
        observe = getattr(policy, "observe", None)
        if observe is not None:
            observe(decision, prompt_tokens, cached_share)

    def prefix_blocks(self, backend_id: str) -> int:
        """Prompt blocks the prefix indexes believe `backend_id` holds, across pools (for the admin view)."""
        return sum(index.size(backend_id) for policy in self._policies.values() for index in prefix_indexes(policy))

    def prefix_capacity(self, backend_id: str) -> float | None:
        """The least capacity the prefix indexes have learned for `backend_id` (`PrefixIndex.capacity`), across
        pools; None where none has learned one."""
        learned = [index.capacity(backend_id) for policy in self._policies.values() for index in prefix_indexes(policy)
                   if index.learned(backend_id)]
        return min(learned) if learned else None

    def choose(self, request: RouteRequest, candidates: Sequence[Backend], override: str = "") -> Decision:
        return self.policy(request.model, override).choose(request, candidates)

