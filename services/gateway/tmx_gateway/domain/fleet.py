"""The gateway's view of the fleet: backends with their health and load, and the model catalogue.

Fed by the fleet file (what exists), the health service's events (what is healthy) and the gateway's own
requests (what is in flight, what just failed). Pure: callers pass `now`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from tmx_config import FleetFile
from tmx_gateway.domain.engine_costs import CostFit, CostPool
from tmx_gateway.domain.metering import Usage
from tmx_gateway.domain.resilience import BreakerState, CircuitBreaker


class State(str, Enum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    SUSPECT = "suspect"
    UNHEALTHY = "unhealthy"
    RECOVERING = "recovering"
    DRAINING = "draining"


ROUTABLE = frozenset({State.UNKNOWN, State.HEALTHY, State.SUSPECT})


@dataclass(frozen=True)
class EngineLoad:
    """What the engine itself reports (via the health service's scrapes); policies may read it. Absent for
    engines without metrics, where the gateway's own in-flight counts are all there is."""
    running: float
    waiting: float
    kv_cache_usage: float
    prefix_cache_hit_rate: float  # -1 when unknown
    at: float  # monotonic time it was applied


@dataclass
class Backend:
    id: str
    url: str
    models: tuple[str, ...]
    weight: float = 1.0
    state: State = State.UNKNOWN
    inflight: int = 0
    served: int = 0
    failed: int = 0
    load: EngineLoad | None = None
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    inflight_prompt_tokens: int = 0  # estimated prompt tokens of requests in flight (kept by `Attempt`)
    prefilling_prompt_tokens: int = 0  # ... of those not yet prefilled: the prefill still queued on it
    inflight_output_tokens: int = 0  # output tokens requests in flight may still decode (max_tokens less those out)
    ewma_latency_ms: float = 0.0  # 0 until the first response
    ewma_ttft_ms: float = 0.0
    costs: CostFit = field(default_factory=CostFit)  # its engine's costs, learned from the TTFTs it shows

    def busy_seqs(self) -> float:
        """Sequences running or waiting there: the engine's own count where it reports one, at least this gateway's
        requests in flight."""
        engine = self.load.running + self.load.waiting if self.load else 0.0
        return max(float(self.inflight), engine)

    def queued_prefill_tokens(self) -> float:
        """Prompt tokens queued for prefill there: those sent and not yet prefilled, plus the engine's own queue
        (its waiting requests) at this gateway's average prompt size."""
        queued = float(self.prefilling_prompt_tokens)
        if self.load is not None and self.inflight:
            queued += self.load.waiting * self.inflight_prompt_tokens / self.inflight
        return queued

    def ttft_ms(self, prefill_tokens: float, priced: tuple[float, float] | None = None) -> float:
        """Its estimated TTFT for a prompt sent now with `prefill_tokens` of its own to prefill (at `priced`: a
        factor on the reference costs and an overhead, where given, else at its own learned ones)."""
        return self.costs.ttft_ms(self.queued_prefill_tokens() + prefill_tokens, self.busy_seqs(), priced)

    def observe_latency(self, latency_ms: float, ttft_ms: float, alpha: float = 0.2) -> None:
        self.ewma_latency_ms = latency_ms if not self.ewma_latency_ms else (
            alpha * latency_ms + (1 - alpha) * self.ewma_latency_ms)
        if ttft_ms:
            self.ewma_ttft_ms = ttft_ms if not self.ewma_ttft_ms else alpha * ttft_ms + (1 - alpha) * self.ewma_ttft_ms

    def routable(self, now: float) -> bool:
        return self.state in ROUTABLE and self.breaker.allows(now)


class Attempt:
    """One attempt of a request on a backend, from dispatch to its end: the work it adds to the backend's
    in-flight counts, each part taken back exactly once however often it is reported.

    Its prompt counts as queued for prefill until `prefilled()`: a stream's first bytes, or, for a non-streamed
    answer (where nothing shows prefill ending), the time `prefill_eta_s` estimates when it was sent. Only the part
    the backend is not expected to have cached (`cached_tokens`, as routing predicted it) is queued prefill work:
    prompts sent to the replica that holds their prefix cost it only their uncached rest. Its output counts as
    decode work owed until a stream shows it `decoded()`. A stream's first token (`first_token`) is also an
    observation of the backend's TTFT under the load it was sent into, from which its costs are learned; a
    non-streamed answer's end (`answered`), of how long a whole answer took there. Both are priced at the
    prompt's own prefill as the backend's usage reports it (its cached tokens), where it does: a prefix routing
    thought cached but the engine had evicted is a prefill the backend did, not a sign that it is slow. So a
    stream's TTFT is learned at its end (`learn`, with its usage), or, without one, when it ends; as unqueued where
    no other prompt's prefill was queued on the backend when it was sent (from those the backend's fixed overhead
    is learned)."""

    __slots__ = ("backend", "prompt_tokens", "prefill_tokens", "max_tokens", "is_prefilled", "is_ended",
                 "prefill_eta_s", "output_done", "sent_at", "_ahead", "_unqueued", "_seqs", "_ttft_ms")

    def __init__(self, backend: Backend, prompt_tokens: int, max_tokens: int, cached_tokens: int = 0,
                 now: float = 0.0) -> None:
        self.backend, self.prompt_tokens, self.max_tokens = backend, prompt_tokens, max_tokens
        self.prefill_tokens = max(prompt_tokens - cached_tokens, 0)
        self.is_prefilled = self.is_ended = False
        self.output_done = 0
        self.sent_at = now
        self._ttft_ms = 0.0  # seen, not yet learned
        queued = backend.queued_prefill_tokens()
        self._ahead, self._unqueued = queued + self.prefill_tokens, not queued  # what the TTFT estimate is made of
        self._seqs = backend.busy_seqs()
        self.prefill_eta_s = backend.costs.ttft_ms(self._ahead, self._seqs) / 1000
        backend.inflight += 1
        backend.inflight_prompt_tokens += prompt_tokens
        backend.prefilling_prompt_tokens += self.prefill_tokens
        backend.inflight_output_tokens += max_tokens

    def prefilled(self) -> None:
        """Its prompt is prefilled: no longer work queued on the backend (it goes on decoding)."""
        if not self.is_prefilled and not self.is_ended:
            self.is_prefilled = True
            self.backend.prefilling_prompt_tokens -= self.prefill_tokens

    def first_token(self, now: float) -> None:
        """A stream's first bytes arrived at `now` (same clock as `sent_at`): prefilled, and its TTFT seen."""
        if not self.is_prefilled and not self.is_ended:
            self._ttft_ms = (now - self.sent_at) * 1000
        self.prefilled()

    def learn(self, usage: Usage | None = None) -> None:
        """The stream's TTFT, if seen, is learned as an observation of the prefill work it waited for (its own
        part as `usage` reports it, where it does)."""
        if self._ttft_ms and not self.is_ended:
            self.backend.costs.observe(self._prefill_ahead(usage), self._seqs, self._ttft_ms, self._unqueued)
        self._ttft_ms = 0.0

    def answered(self, now: float, usage: Usage) -> None:
        """A non-streamed answer arrived whole at `now` (same clock as `sent_at`), with its `usage`."""
        if not self.is_ended and usage.completion_tokens > 0:
            self.backend.costs.observe_answer(self._prefill_ahead(usage), self._seqs, usage.completion_tokens,
                                              (now - self.sent_at) * 1000)

    def _prefill_ahead(self, usage: Usage | None) -> float:
        """The prefill work the TTFT estimate was made of, with the prompt's own part at the share of it the
        backend reports it did not have cached (scaled onto the gateway's token estimate, which the costs are
        fitted against) instead of the share routing predicted."""
        if usage is None or not usage.cached_reported or not usage.prompt_tokens:
            return self._ahead
        uncached = max(usage.prompt_tokens - usage.cached_tokens, 0) / usage.prompt_tokens
        return self._ahead - self.prefill_tokens + self.prompt_tokens * uncached

    def decoded(self, tokens: int) -> None:
        """`tokens` of its output are out (a stream's events so far): only the rest is decode work still owed."""
        done = min(tokens, self.max_tokens)
        if done > self.output_done and not self.is_ended:
            self.backend.inflight_output_tokens -= done - self.output_done
            self.output_done = done

    def ended(self) -> None:
        """Answered, failed or abandoned: none of its work remains on the backend."""
        if self.is_ended:
            return
        self.learn()  # a TTFT seen and not yet learned: at the prefill routing predicted
        self.prefilled()
        self.is_ended = True
        b = self.backend
        b.inflight -= 1
        b.inflight_prompt_tokens -= self.prompt_tokens
        b.inflight_output_tokens -= self.max_tokens - self.output_done


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    aliases: tuple[str, ...]
    context_length: int
    backend_ids: tuple[str, ...]


@dataclass
class FleetView:
    backends: dict[str, Backend] = field(default_factory=dict)
    breaker_threshold: int = 3
    breaker_cooldown_s: float = 2.0
    learn_costs: bool = True  # False: every backend keeps the reference engine costs
    share_costs: bool = False  # True (with peers): each backend's observations are kept for the peers too
    _cost_pool: CostPool = field(default_factory=CostPool)  # what all its backends' TTFTs showed together
    _aliases: dict[str, str] = field(default_factory=dict)
    _context: dict[str, int] = field(default_factory=dict)
    _fallbacks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # model -> its fallbacks, canonical

    def apply_fleet(self, fleet: FleetFile) -> None:
        """Adopt a (re)loaded fleet file. A backend that remains at the same URL stays the same object, so its
        live state (health, breaker, counters, load) carries over and attempts in flight still return to it."""
        fresh: dict[str, Backend] = {}
        for spec in fleet.backends:
            backend = self.backends.get(spec.id)
            if backend is not None and backend.url == spec.url:
                backend.models, backend.weight = tuple(spec.models), spec.weight
            else:
                backend = Backend(spec.id, spec.url, tuple(spec.models), spec.weight, breaker=self._breaker(),
                                  costs=self._cost_fit())
            fresh[spec.id] = backend
        self.backends = fresh
        self._aliases = fleet.aliases()
        self._context = {model.name: model.context_length for model in fleet.models}
        self._fallbacks = {model.name: tuple(dict.fromkeys(self._aliases.get(f, f) for f in model.fallbacks))
                           for model in fleet.models if model.fallbacks}

    def set_state(self, backend_id: str, state: State, url: str = "", models: tuple[str, ...] = ()) -> bool:
        """Apply a health verdict. Backends the health service registered dynamically are added."""
        backend = self.backends.get(backend_id)
        if backend is None:
            if not url:
                return False
            backend = self.backends[backend_id] = Backend(backend_id, url, models, breaker=self._breaker(),
                                                          costs=self._cost_fit())
        elif models:
            backend.models = models
        backend.state = state
        if state == State.HEALTHY:
            backend.breaker.success()  # the health service's probes vouch for it again
        return True

    def _cost_fit(self) -> CostFit:
        return CostFit(learn=self.learn_costs, pool=self._cost_pool, share=self.share_costs)

    def _breaker(self) -> CircuitBreaker:
        return CircuitBreaker(threshold=self.breaker_threshold, cooldown_s=self.breaker_cooldown_s)

    def eject(self, backend_id: str, until: float) -> None:
        """Take a backend out locally until `until` (its breaker forced open), whatever health says."""
        if backend_id in self.backends:
            breaker = self.backends[backend_id].breaker
            breaker.state, breaker.opened_until = BreakerState.OPEN, until

    def fallbacks(self, model: str) -> tuple[str, ...]:
        """The models (canonical) that answer for `model` when its own backends cannot, in order."""
        return self._fallbacks.get(model, ())

    def resolve_model(self, name: str) -> str | None:
        canonical = self._aliases.get(name, name)
        return canonical if any(canonical in b.models for b in self.backends.values()) else None

    def candidates(self, model: str, now: float, exclude: set[str] = frozenset()) -> list[Backend]:
        return [b for b in self.backends.values() if model in b.models and b.id not in exclude and b.routable(now)]

    def catalogue(self) -> list[CatalogueEntry]:
        names = sorted({m for b in self.backends.values() for m in b.models})
        return [
            CatalogueEntry(
                name=name,
                aliases=tuple(sorted(a for a, t in self._aliases.items() if t == name)),
                context_length=self._context.get(name, 0),
                backend_ids=tuple(b.id for b in self.backends.values() if name in b.models),
            )
            for name in names
        ]
