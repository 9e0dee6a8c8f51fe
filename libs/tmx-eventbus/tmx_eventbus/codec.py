"""Typed envelopes: a protobuf payload with `Tmx-Type` and `Nats-Msg-Id` headers."""

from __future__ import annotations

import time
import uuid

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
    )
}


class DecodeError(ValueError):
    pass


def new_event_id() -> str:
    return uuid.uuid4().hex


def encode(message: Message) -> tuple[bytes, dict[str, str]]:
    """Serialise an event, filling `event_id` and `occurred_at_unix_ms` when unset."""
    if not message.event_id:  # type: ignore[attr-defined]
        message.event_id = new_event_id()  # type: ignore[attr-defined]
    if not message.occurred_at_unix_ms:  # type: ignore[attr-defined]
        message.occurred_at_unix_ms = int(time.time() * 1000)  # type: ignore[attr-defined]
    headers = {TYPE_HEADER: message.DESCRIPTOR.full_name, ID_HEADER: message.event_id}  # type: ignore[attr-defined]
    return message.SerializeToString(), headers


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
