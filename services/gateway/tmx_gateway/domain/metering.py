"""Reading token usage out of upstream responses without touching the bytes the client receives."""

from __future__ import annotations

from dataclasses import dataclass

from tmx_gateway.domain.json_bodies import parse
from tmx_gateway.domain.sse import payload, split_events


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False


def _from_obj(usage: dict | None) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


def usage_from_body(body: bytes) -> Usage:
    try:
        return _from_obj(parse(body).get("usage")) or Usage()
    except (ValueError, AttributeError):
        return Usage()


class StreamMeter:
    """Watches SSE bytes as they pass: counts content events and keeps the last `usage` object seen, and says
    where the complete events end, so a relay forwards whole events only.

    Only events that mention "usage" are parsed, so the cost per chunk is a substring search.
    """

    def __init__(self) -> None:
        self._pending = b""
        self.events = 0
        self.usage: Usage | None = None
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        """Meter `chunk`; returns the bytes of the events it completes (held-back bytes included), b"" while
        an event is still unfinished. The unfinished rest is `pending`."""
        buffer = self._pending + chunk
        complete, self._pending = split_events(buffer)
        for event in complete:
            data = payload(event)
            if data is None:
                continue
            if data == b"[DONE]":
                self.done = True
                continue
            self.events += 1
            if b'"usage"' in data:
                try:
                    parsed = _from_obj(parse(data).get("usage"))
                except ValueError:
                    parsed = None
                if parsed is not None:
                    self.usage = parsed
        return buffer[:len(buffer) - len(self._pending)] if complete else b""

    @property
    def pending(self) -> bytes:
        return self._pending

    def discard_partial(self) -> None:
        """Forget an unfinished event (its stream broke; another stream's events follow)."""
        self._pending = b""

    def result(self) -> Usage:
        if self.usage is not None:
            return self.usage
        # No usage chunk (the client did not ask for one): one content event ~ one token.
        return Usage(completion_tokens=max(self.events - 1, 0), estimated=True)
