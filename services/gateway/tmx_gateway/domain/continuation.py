"""Continuing a chat-completion stream that broke mid-way on another backend.

The client has been sent some complete SSE events. Their text is the prefix of the answer; another backend
is asked to continue it (vLLM's and SGLang's `continue_final_message`: the conversation plus the partial
assistant message, no new generation prompt), for the tokens the first one had left. Its events are rewritten
to read as the same stream (the original id, created and model; no second role preamble; usage counting both
parts) so the client sees one answer. Where that is not possible the caller ends the stream with an SSE error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tmx_gateway.domain import sse


@dataclass
class Transcript:
    """What the client has been told so far."""

    id: str = ""
    created: int = 0
    model: str = ""
    text: str = ""
    deltas: int = 0  # content events: about one token each
    finished: bool = False  # a finish_reason was already sent: nothing is missing but the end
    obstacle: str = ""  # why the stream cannot be continued ("" when it can)


def read_transcript(events: list[bytes]) -> Transcript:
    """Parse the complete SSE events already relayed (called only when a stream breaks)."""
    t = Transcript()
    parts: list[str] = []
    for event in sse.split_events(b"".join(events))[0]:
        raw = sse.payload(event)
        if raw is None:
            continue
        if raw == b"[DONE]":
            t.finished = True
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            t.obstacle = "an event that is not JSON"
            continue
        t.id, t.created, t.model = obj.get("id", t.id), obj.get("created", t.created), obj.get("model", t.model)
        for choice in obj.get("choices") or ():
            if choice.get("index", 0) != 0:
                t.obstacle = "more than one choice"
            delta = choice.get("delta") or {}
            if delta.get("tool_calls") or delta.get("function_call"):
                t.obstacle = "a tool call in progress"
            if delta.get("content"):
                parts.append(delta["content"])
                t.deltas += 1
            if choice.get("finish_reason"):
                t.finished = True
    t.text = "".join(parts)
    return t


def continuation_request(payload: dict, t: Transcript) -> dict | None:
    """The body that asks another backend for the rest, or None when no tokens are left to generate."""
    body = {k: v for k, v in payload.items() if k not in ("max_tokens", "max_completion_tokens")}
    limit = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool):
        left = limit - t.deltas
        if left < 1:
            return None
        body["max_tokens"] = left
    body["messages"] = [*payload["messages"], {"role": "assistant", "content": t.text}]
    body["continue_final_message"] = True
    body["add_generation_prompt"] = False
    body["stream"] = True
    return body


def rewrite(event: bytes, t: Transcript) -> bytes | None:
    """One complete SSE event of the continuation as the client should see it, or None to drop it."""
    raw = sse.payload(event)
    if raw is None or raw == b"[DONE]":
        return event
    try:
        obj = json.loads(raw)
    except ValueError:
        return event
    choices = obj.get("choices") or []
    if choices and all((c.get("delta") or {}) in ({"role": "assistant"}, {"role": "assistant", "content": ""})
                       and not c.get("finish_reason") for c in choices):
        return None  # the continuation's role preamble: the client already has one
    obj["id"], obj["created"], obj["model"] = t.id or obj.get("id"), t.created or obj.get("created"), \
        t.model or obj.get("model")
    usage = obj.get("usage")
    if isinstance(usage, dict):  # count the answer as one: the first part's tokens were re-read as prompt
        prompt = max(int(usage.get("prompt_tokens") or 0) - t.deltas, 0)
        completion = int(usage.get("completion_tokens") or 0) + t.deltas
        usage.update(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def finish_events(t: Transcript) -> bytes:
    """The end of a stream whose answer was complete when it broke (or that had no tokens left)."""
    closing = b""
    if not t.finished:
        chunk = {"id": t.id, "object": "chat.completion.chunk", "created": t.created, "model": t.model,
                 "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]}
        closing = b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    return closing + b"data: [DONE]\n\n"
