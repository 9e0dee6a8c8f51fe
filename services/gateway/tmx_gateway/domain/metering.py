"""Reading token usage out of upstream responses without touching the bytes the client receives."""

from __future__ import annotations

from dataclasses import dataclass

from tmx_gateway.domain.json_bodies import parse
from tmx_gateway.domain.sse import payload


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False
    cached_reported: bool = False  # the backend said how many prompt tokens it had cached (0 included)


def _from_obj(usage: dict | None) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
        cached_reported=isinstance(details, dict) and details.get("cached_tokens") is not None,
    )


def usage_from_body(body: bytes) -> Usage:
    try:
        return _from_obj(parse(body).get("usage")) or Usage()
    except (ValueError, AttributeError):
        return Usage()


def _is_done(event: bytes) -> bool:
    return payload(event.lstrip(b"\n")) == b"[DONE]"  # after extra blank lines, as the bulk count counts it


class StreamMeter:
    """Watches SSE bytes as they pass: counts data events and keeps the last `usage` object seen, and says
    where the complete events end, so a relay forwards whole events only.

    Events are counted in bulk (`bytes.count`); only the events of a chunk that mentions `[DONE]` or a usage
    that is not null are looked at one by one, so the cost per chunk is a few substring searches.
    """

    def __init__(self) -> None:
        self._pending = b""
        self.events = 0
        self.usage: Usage | None = None
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        """Meter `chunk`; returns the bytes of the events it completes (held-back bytes included), b"" while
        an event is still unfinished. The unfinished rest is `pending`."""
        buffer = self._pending + chunk if self._pending else chunk
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._pending = buffer
            return b""
        complete, self._pending = buffer[:end], buffer[end + 2:]
        # an event starts the chunk (after any blank lines the last chunk's end left) or follows a blank line
        head = complete.lstrip(b"\n")  # (the same bytes object unless there were blank lines to strip)
        self.events += head.startswith(b"data:") + head.count(b"\n\ndata:")
        dones = complete.count(b"[DONE]")
        if dones == 1:  # the usual end: `data: [DONE]` as the last event
            last = complete.rfind(b"\n\n")
            if _is_done(complete[last + 2:] if last >= 0 else complete):
                self._end()
                dones = 0
        usage = b'"usage"' in complete and complete.count(b'"usage"') != \
            complete.count(b'"usage":null') + complete.count(b'"usage": null')
        if dones or usage:
            for event in complete.split(b"\n\n"):
                if dones and _is_done(event):
                    self._end()
                elif usage and b'"usage"' in event and (data := payload(event.lstrip(b"\n"))) is not None:
                    self._read_usage(data)
        return buffer[:end + 2]

    def _end(self) -> None:
        self.done = True
        self.events -= 1  # counted above, but the stream's end, not an event of the answer

    def _read_usage(self, data: bytes) -> None:
        try:
            parsed = _from_obj(parse(data).get("usage"))
        except (ValueError, AttributeError):
            parsed = None
        if parsed is not None:
            self.usage = parsed

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
