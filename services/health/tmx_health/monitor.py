"""Runs the probes on a schedule, feeds the state machines, and publishes every transition."""

from __future__ import annotations

import asyncio
import logging
import time

from tensormux.events.v1 import events_pb2
from tmx_health.domain.directory import Directory
from tmx_health.domain.state_machine import BackendHealth, State, Thresholds
from tmx_health.events import FROM_PROTO, StatePublisher, to_event
from tmx_health.prober import Prober

log = logging.getLogger(__name__)


class Monitor:
    def __init__(self, directory: Directory, prober: Prober, publisher: StatePublisher, thresholds: Thresholds,
                 interval_s: float) -> None:
        self.directory = directory
        self.prober = prober
        self.publisher = publisher
        self.thresholds = thresholds
        self.interval_s = interval_s
        self._watchers: set[asyncio.Queue] = set()

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
            resumed += 1
        return resumed

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await self.probe_all()
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def probe_all(self) -> None:
        backends = list(self.directory.backends.values())
        results = await asyncio.gather(*(self.prober.probe(b.url) for b in backends))
        now_ms = int(time.time() * 1000)
        for backend, result in zip(backends, results):
            if self.directory.backends.get(backend.id) is not backend:
                continue  # deregistered while probing
            previous = backend.state
            transition = backend.observe(result.ok, self.thresholds, error=result.error,
                                         latency_ms=result.latency_ms, now_ms=now_ms)
            if transition is not None:
                await self.announce(backend, previous, transition.reason)

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
