"""Publishing backend state: a BackendStateChanged event per transition, and the current state in KV."""

from __future__ import annotations

import logging

from nats.js.errors import KeyNotFoundError, NoKeysError

from tensormux.events.v1 import events_pb2
from tmx_eventbus import EventBus, subjects
from tmx_health.domain.state_machine import BackendHealth, State

log = logging.getLogger(__name__)

TO_PROTO = {
    State.UNKNOWN: events_pb2.BACKEND_STATE_UNKNOWN,
    State.HEALTHY: events_pb2.BACKEND_STATE_HEALTHY,
    State.UNHEALTHY: events_pb2.BACKEND_STATE_UNHEALTHY,
    State.DRAINING: events_pb2.BACKEND_STATE_DRAINING,
}
FROM_PROTO = {v: k for k, v in TO_PROTO.items()}


def to_event(backend: BackendHealth, previous: State, reason: str) -> events_pb2.BackendStateChanged:
    return events_pb2.BackendStateChanged(
        backend_id=backend.id, url=backend.url, models=list(backend.models), previous=TO_PROTO[previous],
        current=TO_PROTO[backend.state], reason=reason, consecutive_failures=backend.consecutive_failures,
        consecutive_successes=backend.consecutive_successes,
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
