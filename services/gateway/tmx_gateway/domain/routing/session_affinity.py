from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence

from tmx_gateway.domain.fleet import Backend
from tmx_gateway.domain.routing.least_inflight import LeastInflight
from tmx_gateway.domain.routing.policy import Decision, RouteRequest

VIRTUAL_NODES = 64


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class SessionAffinity:
    """Consistent hashing with bounded loads (Mirrokni et al.): a session sticks to its backend, so its KV
    cache is reused, unless that backend already carries more than `load_factor` x the average in flight;
    then the next backend on the ring takes it. Adding or removing a backend moves only its share."""

    name = "session_affinity"
    needs_prompt = False

    def __init__(self, load_factor: float = 1.25) -> None:
        self.load_factor = load_factor
        self._fallback = LeastInflight()
        self._ring_for: tuple[str, ...] = ()
        self._ring: list[tuple[int, str]] = []

    def _build(self, ids: tuple[str, ...]) -> None:
        self._ring = sorted((_hash(f"{backend_id}#{v}"), backend_id) for backend_id in ids
                            for v in range(VIRTUAL_NODES))
        self._ring_for = ids

    def choose(self, request: RouteRequest, candidates: Sequence[Backend]) -> Decision:
        if not request.session_key:
            fallback = self._fallback.choose(request, candidates)
            return Decision(fallback.backend_id, self.name, "no session key: " + fallback.reason, fallback.scores)
        ids = tuple(sorted(b.id for b in candidates))
        if ids != self._ring_for:
            self._build(ids)
        by_id = {b.id: b for b in candidates}
        total = sum(b.inflight for b in candidates) + 1
        bound = math.ceil(self.load_factor * total / len(candidates))
        start = bisect.bisect(self._ring, (_hash(request.session_key), ""))
        seen = []
        for i in range(len(self._ring)):
            backend_id = self._ring[(start + i) % len(self._ring)][1]
            if backend_id in seen:
                continue
            seen.append(backend_id)
            if by_id[backend_id].inflight + 1 <= bound:
                moved = "" if len(seen) == 1 else f" (home {seen[0]} over its bound of {bound})"
                return Decision(backend_id, self.name, f"session {request.session_key[:16]}{moved}", {})
        least = min(candidates, key=lambda b: b.inflight)
        return Decision(least.id, self.name, "every backend at its bound: least loaded", {})
