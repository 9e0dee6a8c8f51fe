"""NATS adapters of the gateway: publishing outcomes and audits, following health state."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from operator import attrgetter

from google.protobuf.json_format import MessageToDict
from nats.js.errors import KeyNotFoundError, NoKeysError

from tensormux.events.v1 import events_pb2
from tmx_eventbus import EventBus, decode_all, encode_columns, new_event_ids, subjects
from tmx_eventbus.codec import TYPE_HEADER
from tmx_gateway.spool import Spool
from tmx_eventbus.streams import TMX_HEALTH, TMX_LOAD
from tmx_gateway.domain.fleet import ROUTABLE, EngineLoad, FleetView, State
from tmx_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

MAX_BATCH = 512  # requests per publish pass (two events each): an audit event is 200-500 bytes;
# NATS's payload limit is 1 MiB
PACK_SLICE = 64  # requests packed per step of a pass: packing a whole pass at once held the event loop for 2-3 ms
# in a loaded gateway (~7 us a request), a delay for every request that arrived meanwhile; a step takes ~0.5 ms

# record attributes that become the columns of the same name (at_ms becomes occurred_at_unix_ms)
_OUTCOME_FIELDS = ("request_id", "backend_id", "model", "endpoint", "http_status", "streamed", "latency_ms", "ttft_ms",
                   "prompt_tokens", "completion_tokens", "cached_tokens", "error", "request_at_fault")
_AUDIT_FIELDS = ("request_id", "tenant", "api_key_id", "model", "endpoint", "backend_id", "http_status", "streamed",
                 "latency_ms", "prompt_tokens", "completion_tokens", "routing_strategy", "routing_reason", "client_ip",
                 "routing_scores", "cached_tokens", "predicted_cached_tokens", "client_request_id", "traceparent")
_AUDITED_COLUMNS = events_pb2.RequestAuditedColumns.DESCRIPTOR.full_name
_GETTERS = {fields: attrgetter(*fields, "at_ms") for fields in (_OUTCOME_FIELDS, _AUDIT_FIELDS)}

_STATES = {
    events_pb2.BACKEND_STATE_UNKNOWN: State.UNKNOWN,
    events_pb2.BACKEND_STATE_HEALTHY: State.HEALTHY,
    events_pb2.BACKEND_STATE_UNHEALTHY: State.UNHEALTHY,
    events_pb2.BACKEND_STATE_DRAINING: State.DRAINING,
    events_pb2.BACKEND_STATE_SUSPECT: State.SUSPECT,
    events_pb2.BACKEND_STATE_RECOVERING: State.RECOVERING,
}


@dataclass(slots=True)
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
    routing_scores: dict | None = None
    predicted_cached_tokens: int = 0
    at_ms: int = 0  # when it finished (set by EventPublisher.record)
    request_at_fault: bool = False  # see RequestOutcome.request_at_fault
    client_request_id: str = ""  # the client's x-request-id
    traceparent: str = ""  # W3C trace context: the gateway's request span when it traces, else the client's


@dataclass(slots=True)
class FailedAttempt:
    """An attempt that failed over: it has an outcome but no answer (so no stream, timing or tokens)."""

    request_id: str
    backend_id: str
    model: str
    endpoint: str
    http_status: int
    error: str
    latency_ms: float
    at_ms: int
    streamed: bool = False
    ttft_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    request_at_fault: bool = False


class EventPublisher:
    """Hands events to NATS off the request path: requests enqueue, one task publishes in batches, and the
    events of one subject in a batch travel as one columns message (NATS's per-message cost, then building
    one protobuf per event, were most of what auditing cost the gateway).

    Nothing is lost while NATS is away: what cannot be published goes to the spool, and the spool is
    replayed (oldest first, same message ids, so JetStream deduplicates) once NATS answers again. Audit
    events also go to an optional JSONL file for teams without NATS consumers."""

    def __init__(self, bus: EventBus | None, gateway_id: str, metrics: GatewayMetrics, queue_size: int,
                 spool: Spool | None, audit_file: str = "", replay_interval_s: float = 1.0,
                 linger_s: float = 0.2, ack_interval_s: float = 1.0, urgent_linger_s: float = 0.01) -> None:
        self.bus = bus  # set once NATS is connected; None until then (events wait in the spool)
        self.gateway_id = gateway_id
        self.metrics = metrics
        self.spool = spool
        self.audit_file = audit_file
        self.replay_interval_s = replay_interval_s
        self.linger_s = linger_s
        self.urgent_linger_s = urgent_linger_s
        self.queue_size = queue_size
        # a deque and a wake-up event, not an asyncio.Queue: enqueueing is on every request's path
        self._pending: deque[RequestRecord | FailedAttempt] = deque()
        self._wake = asyncio.Event()
        self.ack_interval_s = ack_interval_s
        self._unconfirmed: dict[str, list[tuple[str, bytes, dict[str, str]]]] = {}  # per stream family
        self._confirmed_at = time.monotonic()
        self._last_pass = 0.0
        self._urgent = False  # a failure is waiting: the next pass comes after urgent_linger_s, not linger_s
        self._nap: asyncio.Future | None = None  # the publisher's wait for the next pass, while it lingers
        self._nap_end: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task] = []
        self._in_pass = False  # a pass has taken events off the queue and not yet handed them on

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="event-publisher"),
                       asyncio.create_task(self._replay_loop(), name="spool-replay")]

    def record(self, r: RequestRecord) -> None:
        """A finished request: its RequestOutcome (when a backend answered) and its RequestAudited. Only the
        record is queued here; the events are built in the publish pass, many at a time, where the code is
        warm (built one per request, they cost the request path three times as much)."""
        r.at_ms = int(time.time() * 1000)
        self._enqueue(r, urgent=r.http_status >= 500)

    def record_failed_attempt(self, request_id: str, backend_id: str, model: str, endpoint: str, http_status: int,
                              error: str, latency_ms: float, request_at_fault: bool = False) -> None:
        """An attempt that failed over to another backend: only a RequestOutcome (the health service's
        passive signal); the request's audit event records where it was finally served."""
        self._enqueue(FailedAttempt(request_id, backend_id, model, endpoint, http_status, error, latency_ms,
                                    int(time.time() * 1000), request_at_fault=request_at_fault),
                      urgent=not request_at_fault)

    def _enqueue(self, item: RequestRecord | FailedAttempt, urgent: bool) -> None:
        """Queue an event for the next pass. A failure is urgent (the health service's passive signal): it
        cuts the current linger short to urgent_linger_s after the last pass."""
        if len(self._pending) >= self.queue_size:
            self.metrics.events_dropped.inc()
            return
        self._pending.append(item)
        if not self._wake.is_set():
            self._wake.set()
        if urgent:
            self._hurry()

    def _hurry(self) -> None:
        """Make the next pass come urgent_linger_s after the last one, ending a longer linger early."""
        if self._urgent:
            return  # already due soon: a linger that began since was sized for it, an earlier one was cut short
        self._urgent = True
        if self._nap is not None:
            self._nap_end.cancel()
            self._nap_end = asyncio.get_running_loop().call_later(
                max(0.0, self._last_pass + self.urgent_linger_s - time.monotonic()), _settle, self._nap)

    async def _linger(self, seconds: float) -> None:
        """Sleep until the next pass is due; an urgent event may end the sleep early (see `_enqueue`)."""
        loop = asyncio.get_running_loop()
        self._nap = loop.create_future()
        self._nap_end = loop.call_later(seconds, _settle, self._nap)
        try:
            await self._nap
        finally:
            self._nap_end.cancel()
            self._nap = self._nap_end = None

    def _pack(self, items: list[RequestRecord | FailedAttempt]) -> list[tuple[str, bytes, dict[str, str]]]:
        """One NATS message per subject and event type, the events as columns: a RequestOutcome for every
        attempt a backend answered or failed, a RequestAudited for every request (where it was finally
        served), in the order they finished."""
        outcomes: defaultdict[str, list[RequestRecord | FailedAttempt]] = defaultdict(list)
        audits: defaultdict[str, list[RequestRecord]] = defaultdict(list)
        for r in items:
            if r.backend_id:
                outcomes[subjects.signal_backend(r.backend_id)].append(r)
            if type(r) is RequestRecord:  # a failed attempt has only an outcome
                audits[subjects.audit(r.tenant)].append(r)
        packed = []
        for subject, records in outcomes.items():
            columns = _columns(records, _OUTCOME_FIELDS)
            columns["gateway_id"] = [self.gateway_id] * len(records)
            packed.append((subject, *encode_columns(events_pb2.RequestOutcome, columns)))
        for subject, records in audits.items():
            packed.append((subject, *encode_columns(events_pb2.RequestAudited, _columns(records, _AUDIT_FIELDS))))
        return packed

    async def _pack_in_steps(self, items: list[RequestRecord | FailedAttempt]
                             ) -> list[tuple[str, bytes, dict[str, str]]]:
        """`_pack`, PACK_SLICE requests at a time, letting the event loop run between slices. A columns message
        is all repeated fields, so the serialized slices of one subject concatenate into the message of the
        whole batch (protobuf appends repeated fields when it parses a concatenation); its headers (the type and
        the first event's id) are the first slice's."""
        merged: dict[tuple[str, str], tuple[list[bytes], dict[str, str]]] = {}
        for start in range(0, len(items), PACK_SLICE):
            if start:
                await asyncio.sleep(0)
            for subject, data, headers in self._pack(items[start:start + PACK_SLICE]):
                parts = merged.get((subject, headers[TYPE_HEADER]))
                if parts is None:
                    merged[subject, headers[TYPE_HEADER]] = ([data], headers)
                else:
                    parts[0].append(data)
        return [(subject, b"".join(parts), headers) for (subject, _), (parts, headers) in merged.items()]

    async def _run(self) -> None:
        while True:
            if self._unconfirmed:  # published but not yet acknowledged: confirm them within the ack interval
                try:
                    await asyncio.wait_for(self._wake.wait(), self.ack_interval_s)
                except asyncio.TimeoutError:
                    await self._confirm()
                    continue
            else:
                await self._wake.wait()
            # passes are paced to one per linger_s: under load events gather into batches (NATS and packing
            # are paid per pass more than per event); after a quiet spell the first event goes at once, and a
            # failure goes within urgent_linger_s
            wait = self._last_pass + (self.urgent_linger_s if self._urgent else self.linger_s) - time.monotonic()
            if wait > 0 and len(self._pending) < MAX_BATCH:
                await self._linger(wait)
            self._last_pass = time.monotonic()
            self._urgent = False
            self._wake.clear()
            self._in_pass = True
            try:
                await self._pass([self._pending.popleft() for _ in range(min(len(self._pending), MAX_BATCH))])
            finally:
                self._in_pass = False
            if time.monotonic() - self._confirmed_at >= self.ack_interval_s and self._unconfirmed:
                await self._confirm()

    async def _pass(self, items: list[RequestRecord | FailedAttempt]) -> None:
        """Pack a batch and hand it on: to the audit file, and to NATS or, while NATS is away, the spool."""
        encoded = await self._pack_in_steps(items)
        if self._pending:
            self._wake.set()  # a backlog: the next pass takes it at once
        if self.audit_file:
            self._write_audit_file(encoded)
        if self.spool is None:
            return  # no NATS configured: the audit file is the only sink
        if self.spool.size or self.bus is None or not self.bus.connected:
            self._spool_unconfirmed()
            self._to_spool(encoded)  # keep order: nothing overtakes what is already spooled
            return
        sent = 0
        try:
            for entry in encoded:
                await self.bus.nc.publish(entry[0], entry[1], headers=entry[2])
                self._unconfirmed.setdefault(_stream_family(entry[0]), []).append(entry)
                sent += 1
        except Exception as exc:
            log.warning("NATS publish failed; spooling", extra={"error": repr(exc)})
            self._spool_unconfirmed()
            self._to_spool(encoded[sent:])

    async def _confirm(self) -> None:
        """Events go out as plain publishes; every `ack_interval_s` one acknowledged JetStream publish per stream
        (the last event again: JetStream answers a duplicate without storing it twice) is the barrier — one
        connection keeps order, so its ack means the stream has processed everything before it. A stream whose
        barrier fails has everything since its last barrier spooled; the replay is deduplicated by Nats-Msg-Id,
        so events that did land are not stored twice."""
        self._confirmed_at = time.monotonic()
        families = list(self._unconfirmed.items())
        self._unconfirmed = {}
        results = await asyncio.gather(*(self.bus.js.publish(entries[-1][0], entries[-1][1], headers=entries[-1][2],
                                                             timeout=2.0) for _, entries in families),
                                       return_exceptions=True)
        failed = [entry for (_, entries), result in zip(families, results) if isinstance(result, BaseException)
                  for entry in entries]
        if failed:
            log.warning("NATS did not acknowledge; spooling", extra={"count": len(failed)})
            self._to_spool(failed)

    def _spool_unconfirmed(self) -> None:
        if self._unconfirmed:
            self._to_spool([entry for entries in self._unconfirmed.values() for entry in entries])
            self._unconfirmed = {}

    def _to_spool(self, entries) -> None:
        dropped = self.spool.append(entries)
        if dropped:
            self.metrics.events_dropped.inc(dropped)
        self.metrics.spool_bytes.set(self.spool.size)

    async def _replay_loop(self) -> None:
        while True:
            await asyncio.sleep(self.replay_interval_s)
            if self.spool is not None and self.spool.size and self.bus is not None and self.bus.connected:
                await self.replay()

    async def replay(self) -> int:
        """Publish what the spool holds, oldest first; stop at the first failure and keep the rest."""
        entries = list(self.spool.entries())
        sent = 0
        for subject, data, headers in entries:
            try:
                await self.bus.js.publish(subject, data, headers=headers, timeout=2.0)
            except Exception as exc:
                log.warning("spool replay paused", extra={"error": repr(exc), "left": len(entries) - sent})
                break
            sent += 1
        # events spooled while replaying were appended after `entries`: keep them too
        appended = list(self.spool.entries())[len(entries):]
        self.spool.rewrite(entries[sent:] + appended)
        self.metrics.spool_bytes.set(self.spool.size)
        if sent:
            log.info("spool replayed", extra={"events": sent})
        return sent

    def _write_audit_file(self, encoded) -> None:
        """The audit events as JSON lines, read back from what goes to NATS (one shape for both sinks)."""
        lines = [json.dumps(MessageToDict(m, preserving_proto_field_name=True)) + "\n"
                 for _, data, headers in encoded if headers[TYPE_HEADER] == _AUDITED_COLUMNS
                 for m in decode_all(data, headers)]
        if lines:
            with open(self.audit_file, "a") as fh:
                fh.writelines(lines)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until everything queued so far has been handed to NATS or the spool; passes do not
        linger meanwhile."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (self._pending or self._wake.is_set() or self._in_pass) and asyncio.get_running_loop().time() < deadline:
            self._hurry()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        await self.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._unconfirmed:  # confirm the last events before exiting, or keep them in the spool
            if self.bus is not None and self.bus.connected:
                await self._confirm()
            self._spool_unconfirmed()


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _stream_family(subject: str) -> str:
    return subject.split(".", 2)[1]  # tmx.<family>.… — one JetStream stream per family


def _columns(records: list, fields: tuple[str, ...]) -> dict[str, list]:
    """The records' attributes as columns (transposed in C by zip), with a fresh event id and the finish time."""
    columns = dict(zip((*fields, "occurred_at_unix_ms"), zip(*map(_GETTERS[fields], records))))
    columns["event_id"] = new_event_ids(len(records))
    return columns


class HealthFollower:
    """Applies the health service's BackendStateChanged events to the fleet view (latest per backend first)."""

    def __init__(self, bus: EventBus, fleet: FleetView, metrics: GatewayMetrics) -> None:
        self.bus, self.fleet, self.metrics = bus, fleet, metrics

    async def load_snapshot(self) -> int:
        """Apply the current state of every backend from the health service's KV bucket, so the gateway knows
        the fleet before it serves its first request."""
        kv = await self.bus.backends_kv()
        try:
            keys = await kv.keys()
        except NoKeysError:
            return 0
        for key in keys:
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                continue
            if entry.value:
                await self._apply(events_pb2.BackendStateChanged.FromString(entry.value))
        return len(keys)

    async def run(self) -> None:
        await asyncio.gather(
            self.bus.follow_last_per_subject(TMX_HEALTH.name, subjects.ALL_HEALTH, self._apply),
            self.bus.follow_last_per_subject(TMX_LOAD.name, subjects.ALL_LOAD, self._apply_load),
        )

    async def _apply_load(self, event) -> None:
        backend = self.fleet.backends.get(getattr(event, "backend_id", ""))
        if isinstance(event, events_pb2.LoadSnapshot) and backend is not None:
            backend.load = EngineLoad(event.running, event.waiting, event.kv_cache_usage, event.prefix_cache_hit_rate,
                                      time.monotonic())

    async def _apply(self, event) -> None:
        if not isinstance(event, events_pb2.BackendStateChanged):
            return
        state = _STATES.get(event.current, State.UNKNOWN)
        if self.fleet.set_state(event.backend_id, state, event.url, tuple(event.models)):
            self.metrics.backend_up.labels(event.backend_id).set(1 if state in ROUTABLE else 0)
            log.info("backend state", extra={"backend": event.backend_id, "state": state.value,
                                             "reason": event.reason})
