"""What the workers of one gateway, and gateway replicas in one peer group, tell each other, so each routes on
the whole gateway's view.

Each worker serves its own share of the connections, so on its own it would see only its share of the load on
each backend, learn only the prefixes it routed itself, and spend only its share of a tenant's rate limit. Every
few milliseconds each worker sends its peers a note: its own in-flight work per backend and its running counts
of attempts each backend served and failed (snapshots: a lost note is healed by the next), the prompt prefixes
it routed, the tenants' spend and the observations of each backend's speed its answers gave (`CostFit.outbox`)
since its last note (deltas: a lost note loses a little knowledge, never corrupts it).

A peer's load is added into the same `Backend` counters the worker's own attempts keep, so every policy reads
the gateway-wide load without knowing peers exist; the peer's last snapshot is kept to replace it with the next
one, and is taken out again if the peer falls silent. Prefix block hashes are the same in every process
(`prefix_index.HASH_DOMAIN`), so separate gateway replicas in one peer group share them as workers do; a note
from another hash domain (another version's hashing) adds its load and spend but not its prefixes. Pure: callers
pass `now` and the functions that apply what peers learned.
"""

from __future__ import annotations

from collections.abc import Callable

from tmx_gateway.domain.fleet import Backend, FleetView
from tmx_gateway.domain.routing.prefix_index import HASH_DOMAIN

Load = tuple[int, int, int, int]  # inflight, in-flight prompt tokens, prompt tokens prefilling, output tokens owed
_IDLE: Load = (0, 0, 0, 0)


def _load_of(b: Backend) -> Load:
    return b.inflight, b.inflight_prompt_tokens, b.prefilling_prompt_tokens, b.inflight_output_tokens


def _add(b: Backend, load: Load, sign: int) -> None:
    b.inflight += sign * load[0]
    b.inflight_prompt_tokens += sign * load[1]
    b.prefilling_prompt_tokens += sign * load[2]
    b.inflight_output_tokens += sign * load[3]


class PeerView:
    def __init__(self, me: str, silent_after_s: float = 1.0, heartbeat_s: float = 0.25,
                 hash_domain: str = HASH_DOMAIN) -> None:
        self.me, self.silent_after_s, self.heartbeat_s, self.hash_domain = me, silent_after_s, heartbeat_s, hash_domain
        # peer -> backend id -> (the Backend object its load was added to, that load)
        self._shares: dict[str, dict[str, tuple[Backend, Load]]] = {}
        self._outcomes: dict[str, dict[str, tuple[int, int]]] = {}  # peer -> backend id -> (served, failed)
        self._heard: dict[str, float] = {}
        self._prefixes: list[list] = []  # [model, strategy, backend id, hashes] routed since the last note
        self._spent: dict[str, list[int]] = {}  # tenant -> [requests, tokens] since the last note
        self._sent_load: dict[str, Load] | None = None
        self._sent_at = float("-inf")

    # --- what this worker did ----------------------------------------------------------------------------
    def routed_prefix(self, model: str, strategy: str, backend_id: str, hashes: list[int]) -> None:
        if hashes:
            self._prefixes.append([model, strategy, backend_id, hashes])

    def spent(self, tenant: str, requests: int, tokens: int) -> None:
        """Rate-limit spend: `tokens` may be negative (a settlement's refund)."""
        if requests or tokens:
            total = self._spent.setdefault(tenant, [0, 0])
            total[0] += requests
            total[1] += tokens

    def own_load(self, fleet: FleetView) -> dict[str, Load]:
        """This worker's own in-flight work per backend: the counters less what peers added to them."""
        own = {}
        for backend_id, b in fleet.backends.items():
            load = _load_of(b)
            for shares in self._shares.values():
                share = shares.get(backend_id)
                if share is not None and share[0] is b:
                    load = tuple(x - y for x, y in zip(load, share[1]))
            if any(load):
                own[backend_id] = load
        return own

    def note(self, fleet: FleetView, now: float) -> dict | None:
        """The note to send now, or None when there is nothing new and no heartbeat is due."""
        load = self.own_load(fleet)
        observed = any(b.costs.outbox for b in fleet.backends.values())
        if not self._prefixes and not self._spent and not observed and load == self._sent_load and \
                now - self._sent_at < self.heartbeat_s:
            return None
        note = {"from": self.me, "domain": self.hash_domain, "load": load,
                "outcomes": {b.id: (b.served, b.failed) for b in fleet.backends.values() if b.served or b.failed}}
        if observed:
            note["costs"] = {b.id: b.costs.take_outbox() for b in fleet.backends.values() if b.costs.outbox}
        if self._prefixes:
            note["prefixes"], self._prefixes = self._prefixes, []
        if self._spent:
            note["spent"], self._spent = self._spent, {}
        self._sent_load, self._sent_at = load, now
        return note

    # --- what peers did ----------------------------------------------------------------------------------
    def apply(self, note: dict, fleet: FleetView, now: float,
              learn_prefix: Callable[[str, str, str, list[int]], None],
              debit: Callable[[str, int, int], None]) -> bool:
        """Take in a peer's note; False (and nothing applied) if it is this worker's own or malformed."""
        peer = note.get("from")
        if not isinstance(peer, str) or peer == self.me or not isinstance(note.get("load"), dict):
            return False
        self._heard[peer] = now
        self._replace_share(peer, {k: tuple(v) for k, v in note["load"].items()
                                   if isinstance(v, list) and len(v) == 4}, fleet)
        outcomes = note.get("outcomes")
        if isinstance(outcomes, dict):
            self._outcomes[peer] = {k: (v[0], v[1]) for k, v in outcomes.items() if isinstance(v, list) and len(v) == 2
                                    and all(type(x) is int and x >= 0 for x in v)}
        if note.get("domain") == self.hash_domain:
            for model, strategy, backend_id, hashes in note.get("prefixes", ()):
                learn_prefix(model, strategy, backend_id, hashes)
        for tenant, (requests, tokens) in note.get("spent", {}).items():
            debit(tenant, requests, tokens)
        costs = note.get("costs")
        for backend_id, observations in (costs.items() if isinstance(costs, dict) else ()):
            b = fleet.backends.get(backend_id)
            if b is None or not isinstance(observations, list):
                continue
            for entry in observations:
                if isinstance(entry, list) and len(entry) == 3 and all(type(x) in (int, float) for x in entry):
                    b.costs.learn_shared(int(entry[0]), float(entry[1]), float(entry[2]))
        return True

    def forget_silent(self, fleet: FleetView, now: float) -> list[str]:
        """Take out the load of peers not heard from for `silent_after_s` (a worker that died or hung)."""
        silent = [p for p, at in self._heard.items() if now - at > self.silent_after_s]
        for peer in silent:
            self._replace_share(peer, {}, fleet)
            del self._heard[peer], self._shares[peer]
            self._outcomes.pop(peer, None)
        return silent

    def outcomes(self, backend: Backend) -> tuple[int, int]:
        """Attempts `backend` served and failed for the whole gateway: this worker's counts plus each live peer's
        last reported ones."""
        served, failed = backend.served, backend.failed
        for counts in self._outcomes.values():
            peer_served, peer_failed = counts.get(backend.id, (0, 0))
            served, failed = served + peer_served, failed + peer_failed
        return served, failed

    @property
    def peers(self) -> list[str]:
        return sorted(self._heard)

    def _replace_share(self, peer: str, load: dict[str, Load], fleet: FleetView) -> None:
        shares = self._shares.setdefault(peer, {})
        for backend_id in set(shares) | set(load):
            b = fleet.backends.get(backend_id)
            old = shares.pop(backend_id, None)
            if old is not None and old[0] is b:  # a backend replaced by a fleet reload never held the old share
                _add(b, old[1], -1)
            new = load.get(backend_id, _IDLE)
            if b is not None and any(new):
                _add(b, new, +1)
                shares[backend_id] = (b, new)
