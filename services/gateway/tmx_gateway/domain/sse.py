"""Server-sent events as the OpenAI streaming APIs frame them: events ended by a blank line, each with one
`data: <json>` line (chat and completions: that line alone; the Responses API: after an `event: <type>` line).

Lines end in LF (vLLM, SGLang, TensorRT-LLM) or CRLF (servers built on sse-starlette: llama-cpp-python,
Xinference); what is parsed here is read with LF endings, while the bytes a client gets are the server's."""

from __future__ import annotations


def last_blank_line(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """Where the last blank line at or after `start` begins, and its length (2 for LF, 4 for CRLF); (-1, 0)
    without one: the events before it are complete."""
    end = data.rfind(b"\n\n", start)
    if end >= 0:
        return end, 2
    end = data.rfind(b"\r\n\r\n", start)
    return (end, 4) if end >= 0 else (-1, 0)


def split_events(data: bytes) -> tuple[list[bytes], bytes]:
    """The complete events in `data` (without their terminating blank line) and the unfinished rest, with LF
    line endings."""
    if b"\r\n" in data:
        data = data.replace(b"\r\n", b"\n")
    *events, rest = data.split(b"\n\n")
    return events, rest


def payload(event: bytes) -> bytes | None:
    """What an event's `data:` line carries (`[DONE]` included), or None for an event without one."""
    if event.startswith(b"data:"):
        return event[5:].strip()
    at = event.find(b"\ndata:")
    return event[at + 6:].strip() if at >= 0 else None
