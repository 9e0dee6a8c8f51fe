"""Typed envelopes: a protobuf payload with `Tmx-Type` and `Nats-Msg-Id` headers, one event per message,
several of one type packed in an `EventBatch`, or the gateway's per-request events as columns."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import namedtuple
from functools import cache

from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message

from tensormux.events.v1 import events_pb2

TYPE_HEADER = "Tmx-Type"
ID_HEADER = "Nats-Msg-Id"

EVENT_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        events_pb2.BackendStateChanged,
        events_pb2.LoadSnapshot,
        events_pb2.RequestOutcome,
        events_pb2.RequestAudited,
        events_pb2.KernelJob,
        events_pb2.JobProgress,
        events_pb2.KernelPromoted,
        events_pb2.EventBatch,
        events_pb2.RequestOutcomeColumns,
        events_pb2.RequestAuditedColumns,
    )
}
_BATCH = events_pb2.EventBatch.DESCRIPTOR.full_name

# event type -> the message that carries many of them as columns (field k of the event is field k repeated;
# a map field is `<name>_count`, `<name>_keys`, `<name>_values`)
COLUMNS: dict[type[Message], type[Message]] = {
    events_pb2.RequestOutcome: events_pb2.RequestOutcomeColumns,
    events_pb2.RequestAudited: events_pb2.RequestAuditedColumns,
}
_ROWS = {columns.DESCRIPTOR.full_name: event for event, columns in COLUMNS.items()}


class DecodeError(ValueError):
    pass


class _EventIds:
    """32 hex characters: 80 random bits drawn once per process, then a counter. As unique as a uuid4 across
    processes (JetStream deduplicates on it) at a fraction of the cost: no urandom call per event."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)  # a forked child must not repeat its parent's ids

    def reseed(self) -> None:
        self.prefix = os.urandom(10).hex()
        self.counter = 0
        self.lock = threading.Lock()

    def take(self, n: int) -> list[str]:
        """`n` fresh ids: one range of the counter reserved at once (the per-id cost is one f-string)."""
        with self.lock:
            start = self.counter
            self.counter += n
        prefix = self.prefix
        return [f"{prefix}{i & 0xFFFFFFFFFFFF:012x}" for i in range(start, start + n)]


_IDS = _EventIds()


def new_event_id() -> str:
    return _IDS.take(1)[0]


def new_event_ids(n: int) -> list[str]:
    """`n` event ids at once, for events published together (cheaper than `n` calls to `new_event_id`)."""
    return _IDS.take(n)


def stamp(message: Message) -> Message:
    """Fill `event_id` and `occurred_at_unix_ms` where unset."""
    if not message.event_id:  # type: ignore[attr-defined]
        message.event_id = new_event_id()  # type: ignore[attr-defined]
    if not message.occurred_at_unix_ms:  # type: ignore[attr-defined]
        message.occurred_at_unix_ms = int(time.time() * 1000)  # type: ignore[attr-defined]
    return message


def encode(message: Message) -> tuple[bytes, dict[str, str]]:
    """Serialise an event (stamped) with its type and id headers."""
    stamp(message)
    headers = {TYPE_HEADER: message.DESCRIPTOR.full_name, ID_HEADER: message.event_id}  # type: ignore[attr-defined]
    return message.SerializeToString(), headers


def encode_batch(messages: list[Message]) -> tuple[bytes, dict[str, str]]:
    """Pack several events of one type into one `EventBatch` message (each keeps its own id and time)."""
    if not messages:
        raise ValueError("an event batch needs at least one event")
    descriptor = messages[0].DESCRIPTOR
    payloads = []
    for message in messages:
        if message.DESCRIPTOR is not descriptor:
            raise ValueError(f"an event batch holds one type: {descriptor.full_name} and {message.DESCRIPTOR.full_name}")
        payloads.append(stamp(message).SerializeToString())
    return encode(events_pb2.EventBatch(event_type=descriptor.full_name, events=payloads))


@cache
def _map_fields(event_type: type[Message]) -> frozenset[str]:
    return frozenset(f.name for f in event_type.DESCRIPTOR.fields
                     if f.message_type is not None and f.message_type.GetOptions().map_entry)


def encode_columns(event_type: type[Message], columns: dict[str, list]) -> tuple[bytes, dict[str, str]]:
    """Pack events of `event_type` given as columns (field name -> one value per event, in event order; for a
    map field one dict or None per event) into its columns message. `event_id` is required: the first id is
    the message's Nats-Msg-Id, so a replayed batch is deduplicated."""
    ids = columns.get("event_id")
    if not ids:
        raise ValueError("a columns batch needs an event_id per event")
    maps = _map_fields(event_type)
    fields: dict[str, list] = {}
    for name, values in columns.items():
        if len(values) != len(ids):
            raise ValueError(f"column {name!r} has {len(values)} values for {len(ids)} events")
        if name not in maps:
            fields[name] = values
            continue
        counts, keys, items = [], [], []
        for entries in values:
            if entries:
                keys.extend(entries)
                items.extend(entries.values())
            counts.append(len(entries) if entries else 0)
        fields[f"{name}_count"], fields[f"{name}_keys"], fields[f"{name}_values"] = counts, keys, items
    cls = COLUMNS[event_type]
    return cls(**fields).SerializeToString(), {TYPE_HEADER: cls.DESCRIPTOR.full_name, ID_HEADER: ids[0]}


def _column_values(columns: Message, event_type: type[Message]) -> list:
    """One sequence per field of `event_type`, in declaration order, each with a value per event of a columns
    message: a map field's values are dicts. A column with no values is a field no event set (a producer that
    predates it): its default, per event. Any other length than one per event is an error."""
    count = len(columns.event_id)  # type: ignore[attr-defined]
    maps = _map_fields(event_type)
    out: list = []
    for field in event_type.DESCRIPTOR.fields:
        if field.name in maps:
            sizes, keys, values = (getattr(columns, f"{field.name}_{part}") for part in ("count", "keys", "values"))
            if len(sizes) not in (0, count) or len(keys) != len(values) or sum(sizes) != len(keys):
                raise DecodeError(f"map column {field.name!r} does not add up")
            if not sizes:
                out.append([{} for _ in range(count)])
                continue
            offsets = list(itertools.accumulate(sizes, initial=0))
            out.append([dict(zip(keys[offsets[i]:offsets[i + 1]], values[offsets[i]:offsets[i + 1]])) if sizes[i]
                        else {} for i in range(count)])
            continue
        values = getattr(columns, field.name)
        if len(values) not in (0, count):
            raise DecodeError(f"column {field.name!r} has {len(values)} values for {count} events")
        out.append(values if values else itertools.repeat(field.default_value, count))
    return out


def _rows(columns: Message, event_type: type[Message]) -> list[Message]:
    """The events of a columns message, one protobuf each."""
    names = [field.name for field in event_type.DESCRIPTOR.fields]
    return [event_type(**dict(zip(names, row))) for row in zip(*_column_values(columns, event_type))]


@cache
def row_type(event_type: type[Message]) -> type[tuple]:
    """A named tuple of `event_type`'s fields, in declaration order (a map field is a dict): what `decode_rows`
    gives."""
    return namedtuple(f"{event_type.DESCRIPTOR.name}Row",  # type: ignore[misc]
                      [field.name for field in event_type.DESCRIPTOR.fields])


def decode_rows(data: bytes, headers: dict[str, str] | None, event_type: type[Message]) -> list[tuple]:
    """The events of `event_type` a message carries, as `row_type(event_type)` tuples; events of other types
    are left out. From a columns message no protobuf is built per event: a consumer of every request's
    outcome pays a fraction of what `decode_all` costs it (the rows are read straight off the columns)."""
    message = decode(data, headers)
    row = row_type(event_type)
    if _ROWS.get(message.DESCRIPTOR.full_name) is event_type:
        return list(map(row._make, zip(*_column_values(message, event_type))))
    maps = _map_fields(event_type)
    return [row._make(dict(getattr(e, f.name)) if f.name in maps else getattr(e, f.name)
                      for f in event_type.DESCRIPTOR.fields)
            for e in _events(message) if type(e) is event_type]


def decode_all(data: bytes, headers: dict[str, str] | None) -> list[Message]:
    """The events a message carries: itself, the contents of an `EventBatch`, or the rows of a columns
    message."""
    return _events(decode(data, headers))


def _events(event: Message) -> list[Message]:
    rows = _ROWS.get(event.DESCRIPTOR.full_name)
    if rows is not None:
        return _rows(event, rows)
    if not isinstance(event, events_pb2.EventBatch):
        return [event]
    cls = EVENT_TYPES.get(event.event_type)
    if cls is None or event.event_type == _BATCH:
        raise DecodeError(f"unknown event type {event.event_type!r} in a batch")
    inner = []
    for payload in event.events:
        message = cls()
        try:
            message.ParseFromString(payload)
        except ProtoDecodeError as exc:
            raise DecodeError(f"bad {event.event_type} payload in a batch: {exc}") from exc
        inner.append(message)
    return inner


def decode(data: bytes, headers: dict[str, str] | None) -> Message:
    type_name = (headers or {}).get(TYPE_HEADER)
    if type_name is None:
        raise DecodeError(f"missing {TYPE_HEADER} header")
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise DecodeError(f"unknown event type {type_name!r}")
    message = cls()
    try:
        message.ParseFromString(data)
    except ProtoDecodeError as exc:
        raise DecodeError(f"bad {type_name} payload: {exc}") from exc
    return message
