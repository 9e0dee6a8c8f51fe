"""Publishing backend state: a BackendStateChanged event per transition, and the current state in KV."""

from __future__ import annotations

import logging

from nats.js.errors import KeyNotFoundError, NoKeysError

from tensormux.events.v1 import events_pb2
from tmx_eventbus import EventBus, subjects
from tmx_eventbus.streams import TMX_SIGNAL, ConsumerDecl
from tmx_health.domain.state_machine import BackendHealth, State

log = logging.getLogger(__name__)

TO_PROTO = {
    State.UNKNOWN: events_pb2.BACKEND_STATE_UNKNOWN,
    State.HEALTHY: events_pb2.BACKEND_STATE_HEALTHY,
    State.UNHEALTHY: events_pb2.BACKEND_STATE_UNHEALTHY,
    State.DRAINING: events_pb2.BACKEND_STATE_DRAINING,
    State.SUSPECT: events_pb2.BACKEND_STATE_SUSPECT,
    State.RECOVERING: events_pb2.BACKEND_STATE_RECOVERING,
}
FROM_PROTO = {v: k for k, v in TO_PROTO.items()}


def to_event(backend: BackendHealth, previous: State, reason: str) -> events_pb2.BackendStateChanged:
    return events_pb2.BackendStateChanged(
        backend_id=backend.id, url=backend.url, models=list(backend.models), previous=TO_PROTO[previous],
        current=TO_PROTO[backend.state], reason=reason, consecutive_failures=backend.consecutive_failures,
        consecutive_successes=backend.consecutive_successes, context_length=backend.context_length,
    )


class StatePublisher:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._kv = None

    async def open(self) -> None:
        self._kv = await self.bus.backends_kv()

    async def publish(self, backend: BackendHealth, previous: State, reason: str) -> events_pb2.BackendStateChanged:
        event = to_event(backend, previous, reason)
        await self.bus.publish(subjects.health_backend(backend.id), event)
        await self._kv.put(subjects.token(backend.id), event.SerializeToString())
        return event

    async def publish_load(self, backend_id: str, load) -> None:
        await self.bus.publish(subjects.health_load(backend_id), events_pb2.LoadSnapshot(
            backend_id=backend_id, engine=load.engine, running=load.running, waiting=load.waiting,
            kv_cache_usage=load.kv_cache_usage, prefix_cache_hit_rate=load.prefix_cache_hit_rate))

    async def forget(self, backend_id: str) -> None:
        try:
            await self._kv.delete(subjects.token(backend_id))
        except KeyNotFoundError:
            pass

    async def load(self) -> list[events_pb2.BackendStateChanged]:
        """The last published state of every backend, so a restarted service resumes where it was."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        states = []
        for key in keys:
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                continue
            if entry.value:
                event = events_pb2.BackendStateChanged()
                event.ParseFromString(entry.value)
                states.append(event)
        return states


HEALTH_SIGNALS = ConsumerDecl(stream=TMX_SIGNAL.name, durable="health-signals", filter_subject=subjects.ALL_SIGNAL,
                              ack_wait_s=10.0, max_deliver=3, backoff_s=())


def passive_verdict(http_status: int, request_at_fault: bool = False) -> bool | None:
    """What the status of a gateway's request outcome says about the backend: 5xx or no response is a
    failure, 2xx a success; 4xx, 429, client disconnects and a request every backend failed (the gateway's
    `request_at_fault`: a query of death) say nothing about the backend's health."""
    if request_at_fault:
        return None
    if http_status == 0 or http_status >= 500:
        return False
    if 200 <= http_status < 300:
        return True
    return None
