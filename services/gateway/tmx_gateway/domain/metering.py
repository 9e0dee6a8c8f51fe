"""Reading token usage out of upstream responses without touching the bytes the client receives."""

from __future__ import annotations

from dataclasses import dataclass

from tmx_gateway.domain.json_bodies import parse
from tmx_gateway.domain.sse import last_blank_line, payload


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False
    cached_reported: bool = False  # the backend said how many prompt tokens it had cached (0 included)


def _count(value) -> int | None:
    """A token count as a backend reports it: a non-negative integer (or a float with an integer's value); None
    for anything else (missing, a string, NaN, infinity, a negative number, a list)."""
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and 0 <= value < 1e18 and value.is_integer():
        return int(value)
    return None


# the names a usage object's counts go by: (prompt, completion, prompt details); the first whose prompt count is
# present is read
_USAGE_SHAPES = (
    ("prompt_tokens", "completion_tokens", "prompt_tokens_details"),  # chat, completions, embeddings
    ("input_tokens", "output_tokens", "input_tokens_details"),  # the Responses API
    ("total_tokens", "", ""),  # a rerank's (vLLM's, as Cohere's API): its total, all input (nothing is generated)
)


def usage_from_obj(usage) -> Usage | None:
    """A `usage` object as Usage; None if it is not an object. Chat and completion usage (prompt_tokens,
    completion_tokens, prompt_tokens_details), the Responses API's (input_tokens, output_tokens,
    input_tokens_details) or a rerank's (total_tokens). A count it cannot read (see `_count`) counts 0, and a
    cached count it cannot read was not reported."""
    if not isinstance(usage, dict):
        return None
    for prompt, completion, details in _USAGE_SHAPES:
        if prompt in usage:
            break
    else:
        prompt, completion, details = _USAGE_SHAPES[0]
    found = usage.get(details) if details else None
    cached = _count(found.get("cached_tokens")) if isinstance(found, dict) else None
    return Usage(
        prompt_tokens=_count(usage.get(prompt)) or 0,
        completion_tokens=(_count(usage.get(completion)) or 0) if completion else 0,
        cached_tokens=cached or 0,
        cached_reported=cached is not None,
    )


def usage_from_body(body: bytes) -> Usage:
    try:
        parsed = parse(body)
    except ValueError:
        return Usage()
    return (usage_from_obj(parsed.get("usage")) if isinstance(parsed, dict) else None) or Usage()


def _is_done(event: bytes) -> bool:
    return payload(event.lstrip(b"\n")) == b"[DONE]"  # after extra blank lines, as the bulk count counts it


class StreamMeter:
    """Watches SSE bytes as they pass: counts data events and keeps the last `usage` object seen, and says
    where the complete events end, so a relay forwards whole events only.

    Events are counted in bulk (`bytes.count`); only the events of a chunk that mentions `[DONE]` or a usage
    that is not null are looked at one by one, so the cost per chunk is a few substring searches.
    """

    def __init__(self) -> None:
        self._pending: bytes | bytearray = b""  # never holds a blank line: it is what follows the last one
        self.events = 0
        self.usage: Usage | None = None
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        """Meter `chunk`; returns the bytes of the events it completes (held-back bytes included), b"" while
        an event is still unfinished. The unfinished rest is `pending`. An event arriving in many chunks costs
        time linear in its length: its bytes are gathered in place and only the new ones searched."""
        if self._pending:
            held = self._pending
            if type(held) is bytes:
                held = self._pending = bytearray(held)
            searched = max(len(held) - 3, 0)  # a blank line can only end in what arrives now
            held += chunk
            end, size = last_blank_line(held, searched)
            if end < 0:
                return b""
            buffer = bytes(held)
        else:
            buffer = chunk
            end, size = last_blank_line(buffer)
            if end < 0:
                self._pending = chunk
                return b""
        complete, self._pending = buffer[:end], buffer[end + size:]
        if size == 4:  # a server whose lines end in CRLF (see sse.py): read as LF, passed on as they came
            complete = complete.replace(b"\r\n", b"\n")
        # an event's data line starts the chunk (after any blank lines the last chunk's end left) or follows a
        # newline: the blank line before it, or its event's `event:` line (the Responses API)
        head = complete.lstrip(b"\n")  # (the same bytes object unless there were blank lines to strip)
        self.events += head.startswith(b"data:") + head.count(b"\ndata:")  # one data line per event
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
        return buffer[:end + size]

    def _end(self) -> None:
        self.done = True
        self.events -= 1  # counted above, but the stream's end, not an event of the answer

    def _read_usage(self, data: bytes) -> None:
        try:
            obj = parse(data)
        except ValueError:
            return
        if isinstance(obj, dict) and "usage" not in obj and isinstance(obj.get("response"), dict):
            obj = obj["response"]  # a Responses API stream's usage is its final event's response's
        parsed = usage_from_obj(obj.get("usage")) if isinstance(obj, dict) else None
        if parsed is not None:
            self.usage = parsed

    @property
    def pending(self) -> bytes:
        return bytes(self._pending)

    @property
    def pending_size(self) -> int:
        return len(self._pending)

    def discard_partial(self) -> None:
        """Forget an unfinished event (its stream broke; another stream's events follow)."""
        self._pending = b""

    def result(self) -> Usage:
        if self.usage is not None:
            return self.usage
        # No usage chunk (the client did not ask for one): one content event ~ one token.
        return Usage(completion_tokens=max(self.events - 1, 0), estimated=True)
