"""The NATS side of `domain.peers`: every `interval_s` a worker publishes its note (if it has news) on its peer
group's core NATS subject and takes in its peers' notes. Core NATS, not JetStream: the view is live state, and
a note lost while NATS reconnects is healed by the next. Notes go as JSON through orjson (and come back through
`json_bodies.parse`, which still reads a note with NaN in it, as the standard library writes them): a note of
400 bytes took 32 us to write and read with the standard library, 4.5 us with orjson (AMD EPYC); under load a
worker sends some 50-100 a second, of ~1 kB, and reads as many from each peer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import orjson

from tmx_eventbus import EventBus, subjects
from tmx_gateway.domain import json_bodies
from tmx_gateway.domain.fleet import FleetView
from tmx_gateway.domain.peers import PeerView
from tmx_gateway.domain.rate_limits import RateLimiter
from tmx_gateway.domain.routing import Router

log = logging.getLogger(__name__)


def encode_note(note: dict) -> bytes:
    """A note as it travels: JSON, written by orjson."""
    return orjson.dumps(note)


def decode_note(data: bytes):
    """A note as it arrives (any JSON, `PeerView.apply` checks its shape); ValueError if it is not JSON."""
    return json_bodies.parse(data)


class PeerLink:
    def __init__(self, bus: EventBus, group: str, view: PeerView, fleet: FleetView, router: Callable[[], Router],
                 limiter: RateLimiter, interval_s: float) -> None:
        self.bus, self.subject, self.view, self.fleet = bus, subjects.gateway_peers(group), view, fleet
        self._router, self.limiter, self.interval_s = router, limiter, interval_s

    async def run(self) -> None:
        sub = await self.bus.nc.subscribe(self.subject, cb=self._take)
        log.info("sharing the routing view with peer workers", extra={"subject": self.subject})
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                now = time.monotonic()
                for peer in self.view.forget_silent(self.fleet, now):
                    log.warning("peer worker fell silent: its load is no longer counted", extra={"peer": peer})
                if not self.bus.connected:
                    continue
                note = self.view.note(self.fleet, now)
                if note is not None:
                    await self.bus.nc.publish(self.subject, encode_note(note))
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _take(self, msg) -> None:
        now = time.monotonic()
        try:
            self.view.apply(decode_note(msg.data), self.fleet, now, self._router().learn_prefix,
                            lambda tenant, requests, tokens: self.limiter.debit(tenant, requests, tokens, now))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("malformed peer note ignored", extra={"error": repr(exc)})
