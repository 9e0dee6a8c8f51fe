"""Runs each backend's probes on its own schedule, feeds the state machines with probes and the gateways'
passive signals, discovers served models, and publishes every transition."""

from __future__ import annotations

import asyncio
import logging
import time

from tensormux.events.v1 import events_pb2
from tmx_health.domain.directory import Directory
from tmx_health.domain.load import EngineLoad, engine_load
from tmx_health.domain.state_machine import BackendHealth, State, Thresholds
from tmx_health.events import FROM_PROTO, StatePublisher, to_event
from tmx_health.prober import Prober

log = logging.getLogger(__name__)

MODELS_EVERY = 30  # re-read /v1/models every this many good probes (and on the first)


class Monitor:
    def __init__(self, directory: Directory, prober: Prober, publisher: StatePublisher, thresholds: Thresholds,
                 interval_s: float, suspect_interval_s: float = 0.2) -> None:
        self.directory = directory
        self.prober = prober
        self.publisher = publisher
        self.thresholds = thresholds
        self.interval_s = interval_s
        # a suspect backend is probed at this shorter interval, and a failed request wakes its prober at once:
        # gateways stop sending to a dead engine after its first refused connection, so passive signals alone
        # rarely reach `fall`; probes confirm the death in fall x this instead of fall x the interval
        self.suspect_interval_s = suspect_interval_s
        self._wakeups: dict[str, asyncio.Event] = {}
        self._watchers: set[asyncio.Queue] = set()
        self._loops: dict[str, asyncio.Task] = {}
        self._good_probes: dict[str, int] = {}
        self.loads: dict[str, EngineLoad] = {}
        self._lock = asyncio.Lock()  # transitions are published in the order they happen

    def resume(self, saved: list[events_pb2.BackendStateChanged]) -> int:
        """Adopt states saved in KV for backends still in the directory (or registered dynamically)."""
        resumed = 0
        for event in saved:
            backend = self.directory.backends.get(event.backend_id)
            if backend is None:
                backend = self.directory.register(event.backend_id, event.url, tuple(event.models))
            backend.state = FROM_PROTO.get(event.current, State.UNKNOWN)
            backend.consecutive_failures = event.consecutive_failures
            backend.consecutive_successes = event.consecutive_successes
            backend.context_length = event.context_length
            resumed += 1
        return resumed

    async def run(self) -> None:
        """Keep one probe loop per registered backend."""
        try:
            while True:
                for backend_id in set(self.directory.backends) - set(self._loops):
                    self._loops[backend_id] = asyncio.create_task(self._probe_loop(backend_id),
                                                                  name=f"probe-{backend_id}")
                for backend_id in set(self._loops) - set(self.directory.backends):
                    self._loops.pop(backend_id).cancel()
                    self._wakeups.pop(backend_id, None)
                await asyncio.sleep(min(self.interval_s, 0.5))
        finally:
            for task in self._loops.values():
                task.cancel()
            await asyncio.gather(*self._loops.values(), return_exceptions=True)

    async def _probe_loop(self, backend_id: str) -> None:
        wakeup = self._wakeups.setdefault(backend_id, asyncio.Event())
        while (backend := self.directory.backends.get(backend_id)) is not None:
            started = time.monotonic()
            wakeup.clear()
            try:
                await self.probe_one(backend)
            except Exception:  # NATS hiccup while publishing: keep probing, the next transition retries
                log.exception("probe cycle failed", extra={"backend": backend_id})
            interval = backend.interval_s or self.interval_s
            if backend.state == State.SUSPECT:
                interval = min(interval, self.suspect_interval_s)
            try:
                await asyncio.wait_for(wakeup.wait(), max(0.0, interval - (time.monotonic() - started)))
            except asyncio.TimeoutError:
                pass

    async def probe_one(self, backend: BackendHealth) -> None:
        result = await self.prober.probe(backend.url, backend.timeout_s)
        if self.directory.backends.get(backend.id) is not backend:
            return  # deregistered while probing
        if result.ok:
            count = self._good_probes.get(backend.id, 0)
            self._good_probes[backend.id] = count + 1
            if count % MODELS_EVERY == 0:
                await self._discover_models(backend)
            await self._scrape_load(backend)
        async with self._lock:
            transition = backend.observe(result.ok, self.thresholds, error=result.error,
                                         latency_ms=result.latency_ms, now_ms=int(time.time() * 1000))
            if transition is not None:
                await self.announce(backend, transition.previous, transition.reason)

    async def _discover_models(self, backend: BackendHealth) -> None:
        served = await self.prober.models(backend.url, backend.timeout_s)
        if not served:
            return
        models = tuple(sorted(m.id for m in served))
        context = max(m.context_length for m in served)
        if (models, context) != (tuple(sorted(backend.models)), backend.context_length):
            backend.models, backend.context_length = models, context
            async with self._lock:
                await self.announce(backend, backend.state, "served models discovered")

    async def _scrape_load(self, backend: BackendHealth) -> None:
        samples = await self.prober.metrics(backend.url, backend.timeout_s)
        load = engine_load(samples, self.loads.get(backend.id)) if samples else None
        if load is None:
            return  # no engine metrics: gateways route on their own counts
        previous = self.loads.get(backend.id)
        self.loads[backend.id] = load
        if previous is None or (load.running, load.waiting, load.kv_cache_usage, load.prefix_cache_hit_rate) != (
                previous.running, previous.waiting, previous.kv_cache_usage, previous.prefix_cache_hit_rate):
            await self.publisher.publish_load(backend.id, load)

    async def passive(self, verdicts: list[tuple[str, bool, str]]) -> None:
        """Gateways' views of requests, (backend id, succeeded, error) in the order they finished: observed
        under one hold of the lock (a message of outcomes holds hundreds), each backend's transitions announced
        in order. A backend that failed a request is probed at once, to confirm or clear the suspicion."""
        failed: set[str] = set()
        async with self._lock:
            for backend_id, ok, error in verdicts:
                backend = self.directory.backends.get(backend_id)
                if backend is None:
                    continue
                transition = backend.observe(ok, self.thresholds, error=error or "request failed", passive=True)
                if transition is not None:
                    await self.announce(backend, transition.previous, transition.reason)
                if not ok:
                    failed.add(backend_id)
        for backend_id in failed:
            if backend_id in self._wakeups:
                self._wakeups[backend_id].set()

    async def drain(self, backend_id: str, drain: bool) -> BackendHealth:
        backend = self.directory.get(backend_id)
        async with self._lock:
            transition = backend.drain(drain)
            if transition is not None:
                await self.announce(backend, transition.previous, transition.reason)
        return backend

    async def announce(self, backend: BackendHealth, previous: State, reason: str) -> None:
        log.info("backend state changed", extra={"backend": backend.id, "from": previous.value,
                                                 "to": backend.state.value, "reason": reason})
        event = await self.publisher.publish(backend, previous, reason)
        for queue in self._watchers:
            queue.put_nowait(event)

    def snapshot(self) -> list[events_pb2.BackendStateChanged]:
        return [to_event(b, b.state, "current state") for b in self.directory.backends.values()]

    def watch(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._watchers.add(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue) -> None:
        self._watchers.discard(queue)
