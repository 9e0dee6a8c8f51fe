"""The NATS JetStream event bus: every subject, stream and consumer Tensormux uses is declared here."""

from tmx_eventbus import subjects
from tmx_eventbus.bus import EventBus
from tmx_eventbus.codec import (DecodeError, decode, decode_all, decode_rows, encode, encode_batch, encode_columns,
                                new_event_id, new_event_ids, row_type)
from tmx_eventbus.provision import StreamMismatch, provision
from tmx_eventbus.streams import BACKENDS_BUCKET, CONSUMERS, STREAMS, ConsumerDecl, StreamDecl

__all__ = [
    "BACKENDS_BUCKET",
    "CONSUMERS",
    "STREAMS",
    "ConsumerDecl",
    "DecodeError",
    "EventBus",
    "StreamDecl",
    "StreamMismatch",
    "decode",
    "decode_all",
    "decode_rows",
    "encode",
    "encode_batch",
    "encode_columns",
    "new_event_id",
    "new_event_ids",
    "provision",
    "row_type",
    "subjects",
]
