"""NATS adapters of the gateway: publishing outcomes and audits, following health state."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from tensormux.events.v1 import events_pb2
from tmx_eventbus import EventBus, subjects
from tmx_eventbus.streams import TMX_HEALTH
from tmx_gateway.domain.fleet import FleetView, State
from tmx_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

_STATES = {
    events_pb2.BACKEND_STATE_UNKNOWN: State.UNKNOWN,
    events_pb2.BACKEND_STATE_HEALTHY: State.HEALTHY,
    events_pb2.BACKEND_STATE_UNHEALTHY: State.UNHEALTHY,
    events_pb2.BACKEND_STATE_DRAINING: State.DRAINING,
}


@dataclass
class RequestRecord:
    request_id: str
    tenant: str
    api_key_id: str
    model: str
    endpoint: str
    backend_id: str
    http_status: int
    streamed: bool
    latency_ms: float
    ttft_ms: float
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    routing_strategy: str
    routing_reason: str
    client_ip: str
    error: str = ""


class EventPublisher:
    """Hands events to NATS off the request path: requests enqueue, one task publishes in batches."""

    def __init__(self, bus: EventBus, gateway_id: str, metrics: GatewayMetrics, queue_size: int) -> None:
        self.bus = bus
        self.gateway_id = gateway_id
        self.metrics = metrics
        self._queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-publisher")

    def record(self, r: RequestRecord) -> None:
        outcome = events_pb2.RequestOutcome(
            request_id=r.request_id, gateway_id=self.gateway_id, backend_id=r.backend_id, model=r.model,
            endpoint=r.endpoint, http_status=r.http_status, streamed=r.streamed, latency_ms=r.latency_ms,
            ttft_ms=r.ttft_ms, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
            cached_tokens=r.cached_tokens, error=r.error,
        )
        audit = events_pb2.RequestAudited(
            request_id=r.request_id, tenant=r.tenant, api_key_id=r.api_key_id, model=r.model, endpoint=r.endpoint,
            backend_id=r.backend_id, http_status=r.http_status, streamed=r.streamed, latency_ms=r.latency_ms,
            prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
            routing_strategy=r.routing_strategy, routing_reason=r.routing_reason, client_ip=r.client_ip,
        )
        if r.backend_id:
            self._enqueue(subjects.signal_backend(r.backend_id), outcome)
        self._enqueue(subjects.audit(r.tenant), audit)

    def _enqueue(self, subject: str, message) -> None:
        try:
            self._queue.put_nowait((subject, message))
        except asyncio.QueueFull:
            self.metrics.events_dropped.inc()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 128:
                batch.append(self._queue.get_nowait())
            results = await asyncio.gather(
                *(self.bus.publish(subject, message) for subject, message in batch), return_exceptions=True
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                self.metrics.events_dropped.inc(len(failures))
                log.warning("events not published", extra={"count": len(failures), "error": repr(failures[0])})

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until everything queued so far has been handed to NATS."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._queue.empty() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        await self.flush()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class HealthFollower:
    """Applies the health service's BackendStateChanged events to the fleet view (latest per backend first)."""

    def __init__(self, bus: EventBus, fleet: FleetView, metrics: GatewayMetrics) -> None:
        self.bus, self.fleet, self.metrics = bus, fleet, metrics

    async def run(self) -> None:
        await self.bus.follow_last_per_subject(TMX_HEALTH.name, subjects.ALL_HEALTH, self._apply)

    async def _apply(self, event) -> None:
        if not isinstance(event, events_pb2.BackendStateChanged):
            return
        state = _STATES.get(event.current, State.UNKNOWN)
        if self.fleet.set_state(event.backend_id, state, event.url, tuple(event.models)):
            self.metrics.backend_up.labels(event.backend_id).set(1 if state in (State.HEALTHY, State.UNKNOWN) else 0)
            log.info("backend state", extra={"backend": event.backend_id, "state": state.value,
                                             "reason": event.reason})
