"""EventBus: one NATS connection per service, typed publish, and durable pull consumers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats
from google.protobuf.message import Message
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from tmx_eventbus.codec import DecodeError, decode_all, decode_rows, encode
from tmx_eventbus.provision import provision
from tmx_eventbus.streams import BACKENDS_BUCKET, FORGE_WORKERS_BUCKET, ConsumerDecl

log = logging.getLogger(__name__)

Handler = Callable[[Message], Awaitable[None]]
RowsHandler = Callable[[list[tuple]], Awaitable[None]]


class ConnectionLog:
    """A NATS connection's troubles, logged once per outage: a warning when it drops, each distinct error once
    while it lasts, and a line when it is back. nats-py's default logs every failed reconnect, twice a second,
    with a traceback, which buries everything else in a service's log while NATS is away."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.errors = 0  # every error nats-py reported (logged or not)
        self._logged: set[str] = set()  # the errors already logged in this outage
        self.closing = False  # the connection is being closed on purpose (EventBus.close): no outage to report

    async def error(self, exc: Exception) -> None:
        self.errors += 1
        key = f"{type(exc).__name__}: {exc}"
        if key not in self._logged:
            self._logged.add(key)
            log.warning("NATS connection error (retrying; logged once per outage)",
                        extra={"nats_url": self.url, "client": self.name, "error": key})

    async def disconnected(self) -> None:
        if self.closing:
            return
        log.warning("NATS connection lost; reconnecting", extra={"nats_url": self.url, "client": self.name})

    async def reconnected(self) -> None:
        self._logged.clear()
        log.info("NATS connection restored", extra={"nats_url": self.url, "client": self.name})


class EventBus:
    """Wraps a connected nats client. Build it with `EventBus.connect` in a service's composition root."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self._subscriptions: list = []
        self.connection_log: ConnectionLog | None = None  # set by `connect`

    @classmethod
    async def connect(cls, url: str, name: str, *, connect_timeout: float = 2.0, **options) -> EventBus:
        """Connected to `url`; a service's connection reconnects forever, and says so once per outage
        (`ConnectionLog`). `options` override nats.connect's arguments: a command that must fail fast passes
        `allow_reconnect=False, max_reconnect_attempts=1`, without which nats-py retries even the first
        connection forever."""
        watch = ConnectionLog(url, name)
        nc = await nats.connect(url, name=name, connect_timeout=connect_timeout,
                                **{"max_reconnect_attempts": -1, "reconnect_time_wait": 0.5, "error_cb": watch.error,
                                   "disconnected_cb": watch.disconnected, "reconnected_cb": watch.reconnected,
                                   **options})
        bus = cls(nc)
        bus.connection_log = watch
        return bus

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    async def provision(self) -> list[str]:
        return await provision(self.js)

    async def publish(self, subject: str, message: Message, *, timeout: float = 2.0) -> None:
        data, headers = encode(message)
        await self.js.publish(subject, data, headers=headers, timeout=timeout)

    async def backends_kv(self) -> KeyValue:
        return await self.js.key_value(BACKENDS_BUCKET)

    async def forge_workers_kv(self) -> KeyValue:
        return await self.js.key_value(FORGE_WORKERS_BUCKET)

    async def consume(self, decl: ConsumerDecl, handler: Handler, *, batch: int = 16) -> None:
        """Run a durable pull consumer until cancelled, `handler` called on each event. A handler that raises
        gets the message redelivered (with the declared backoff); a message that cannot be decoded is
        terminated, not retried."""

        async def each(events: list[Message]) -> None:
            for event in events:  # a message is acked whole: on a failure its events come again (at-least-once)
                await handler(event)

        await self._pull(decl, batch, decode_all, each)

    async def consume_rows(self, decl: ConsumerDecl, event_type: type[Message], handler: RowsHandler, *,
                           batch: int = 256) -> None:
        """`consume` for high-volume events (every request's outcome): `handler` gets the events of
        `event_type` in each message at once, as `codec.row_type(event_type)` tuples, with no protobuf built
        per event. Events of other types are skipped; a failure redelivers the message, as in `consume`."""

        def rows(data: bytes, headers: dict[str, str] | None) -> list[tuple]:
            return decode_rows(data, headers, event_type)

        async def handle(found: list[tuple]) -> None:
            if found:
                await handler(found)

        await self._pull(decl, batch, rows, handle)

    async def _pull(self, decl: ConsumerDecl, batch: int, decode: Callable[[bytes, dict | None], list],
                    handle: Callable[[list], Awaitable[None]]) -> None:
        config = ConsumerConfig(
            durable_name=decl.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=decl.ack_wait_s,
            max_deliver=decl.max_deliver,
            backoff=list(decl.backoff_s) if decl.backoff_s else None,
            filter_subject=decl.filter_subject,
        )
        psub = await self.js.pull_subscribe(decl.filter_subject, durable=decl.durable, stream=decl.stream, config=config)
        self._subscriptions.append(psub)
        task = asyncio.current_task()
        try:
            while True:
                try:
                    msgs = await psub.fetch(batch, timeout=1.0)
                except (TimeoutError, nats.errors.TimeoutError):
                    msgs = []
                # A cancel that lands as fetch's inner wait_for times out or gets a message is swallowed there
                # (Python 3.11's wait_for): the request is still pending on the task, so honour it here, or
                # the consumer runs on and whoever waits for it to stop hangs.
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError
                for msg in msgs:
                    await self._handle(msg, decode, handle, decl.ack_wait_s)
        finally:
            await _quietly_unsubscribe(psub)

    async def follow_last_per_subject(self, stream: str, subject: str, handler: Handler) -> None:
        """An ephemeral ordered consumer that first replays the latest message per subject, then follows.
        Each gateway uses it to learn the fleet's current state and every change after."""
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def enqueue(msg: Msg) -> None:
            queue.put_nowait(msg)

        sub = await self.js.subscribe(
            subject,
            stream=stream,
            cb=enqueue,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT),
        )
        self._subscriptions.append(sub)
        try:
            while True:
                msg = await queue.get()
                try:
                    for event in decode_all(msg.data, msg.headers):
                        await handler(event)
                except DecodeError as exc:
                    log.warning("dropping undecodable event", extra={"subject": msg.subject, "error": str(exc)})
        finally:
            await _quietly_unsubscribe(sub)

    async def _handle(self, msg: Msg, decode: Callable[[bytes, dict | None], list],
                      handle: Callable[[list], Awaitable[None]], ack_wait_s: float) -> None:
        try:
            events = decode(msg.data, msg.headers)
        except DecodeError as exc:
            log.error("terminating undecodable message", extra={"subject": msg.subject, "error": str(exc)})
            await msg.term()
            return
        heartbeat = asyncio.create_task(_keep_alive(msg, ack_wait_s))
        try:
            await handle(events)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handler failed; message will be redelivered", extra={"subject": msg.subject})
            await msg.nak()
            return
        finally:
            heartbeat.cancel()
        await msg.ack()

    async def close(self) -> None:
        for sub in self._subscriptions:
            await _quietly_unsubscribe(sub)
        self._subscriptions.clear()
        if self.connection_log is not None:
            self.connection_log.closing = True
        if not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.drain(), timeout=5.0)
            except Exception:  # drain can fail on a dead connection; close regardless
                await self.nc.close()


async def _keep_alive(msg: Msg, ack_wait_s: float) -> None:
    """Tell JetStream a long handler is still working, so the message is not redelivered meanwhile;
    if the process dies the heartbeats stop and the message goes to another consumer after ack_wait."""
    while True:
        await asyncio.sleep(ack_wait_s / 3)
        try:
            await msg.in_progress()
        except Exception:
            return


async def _quietly_unsubscribe(sub) -> None:
    try:
        await sub.unsubscribe()
    except Exception:
        pass
