"""Server-sent events as the OpenAI streaming API frames them: `data: <json>` events ended by a blank line."""

from __future__ import annotations


def split_events(data: bytes) -> tuple[list[bytes], bytes]:
    """The complete events in `data` (without their terminating blank line) and the unfinished rest."""
    *events, rest = data.split(b"\n\n")
    return events, rest


def payload(event: bytes) -> bytes | None:
    """What a `data:` event carries (`[DONE]` included), or None for any other field."""
    return event[5:].strip() if event.startswith(b"data:") else None
