"""Continuing a chat-completion or completion stream that broke mid-way on another backend.

The client has been sent some complete SSE events. Their text is the prefix of the answer; another backend
is asked to continue it for the tokens the first one had left: a chat through vLLM's and SGLang's
`continue_final_message` (the conversation plus the partial assistant message, no new generation prompt), a
completion by extending its prompt with the text already sent. Its events are rewritten to read as the same
stream (the original id, created and model; no second role preamble; usage counting both parts) so the
client sees one answer. Where that is not possible the caller ends the stream with an SSE error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tmx_gateway.domain import json_bodies, sse
from tmx_gateway.domain.metering import usage_from_obj


@dataclass
class Transcript:
    """What the client has been told so far."""

    id: str = ""
    object: str = ""
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
        obj = _chunk(raw)
        if obj is None:
            t.obstacle = "an event that is not a completion chunk"
            continue
        t.id, t.created, t.model = obj.get("id", t.id), obj.get("created", t.created), obj.get("model", t.model)
        t.object = obj.get("object", t.object)
        for choice in obj.get("choices") or ():
            if choice.get("index", 0) != 0:
                t.obstacle = "more than one choice"
            delta = choice.get("delta") or {}
            if delta.get("tool_calls") or delta.get("function_call"):
                t.obstacle = "a tool call in progress"
            text = delta.get("content") if "delta" in choice else choice.get("text")  # chat or completion
            if text:
                parts.append(text)
                t.deltas += 1
            if choice.get("finish_reason"):
                t.finished = True
    t.text = "".join(parts)
    return t


def _chunk(raw: bytes) -> dict | None:
    """An event's data as a completion chunk: an object whose choices (if any) are objects, each with a delta
    (if any) that is an object and text or content (if any) that is a string; None if it is not one."""
    try:
        obj = json_bodies.parse_exact(raw)  # exactly: a rewritten chunk is written out again
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("choices") or [], list):
        return None
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict) or not isinstance(choice.get("delta") or {}, dict):
            return None
        text = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
        if text is not None and not isinstance(text, str):
            return None
    return obj


def unsupported(endpoint: str, payload: dict) -> str:
    """Why a stream of this request could not be continued, or "" when it could."""
    if endpoint not in ("/v1/chat/completions", "/v1/completions"):
        return f"{endpoint} streams are not"
    if payload.get("n", 1) != 1 or payload.get("best_of", 1) != 1:
        return "streams of several choices are not"
    if endpoint == "/v1/completions":
        prompt = payload.get("prompt")
        if not (isinstance(prompt, str) or (isinstance(prompt, list) and len(prompt) == 1
                                            and isinstance(prompt[0], str))):
            return "completions of token ids or several prompts are not"
        if payload.get("echo") or payload.get("suffix"):
            return "completions with echo or a suffix are not"
    return ""


def continuation_request(payload: dict, t: Transcript) -> dict | None:
    """The body that asks another backend for the rest, or None when no tokens are left to generate (the
    request is one `unsupported` accepts)."""
    body = {k: v for k, v in payload.items() if k not in ("max_tokens", "max_completion_tokens")}
    limit = payload.get("max_completion_tokens", payload.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool):
        left = limit - t.deltas
        if left < 1:
            return None
        body["max_tokens"] = left
    if "messages" in payload:
        body["messages"] = [*payload["messages"], {"role": "assistant", "content": t.text}]
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
    else:
        prompt = payload["prompt"]
        body["prompt"] = (prompt if isinstance(prompt, str) else prompt[0]) + t.text
    body["stream"] = True
    return body


def rewrite(event: bytes, t: Transcript) -> bytes | None:
    """One complete SSE event of the continuation as the client should see it, or None to drop it."""
    raw = sse.payload(event)
    if raw is None or raw == b"[DONE]":
        return event
    obj = _chunk(raw)
    if obj is None:  # not a completion chunk: passed on as it came
        return event
    choices = obj.get("choices") or []
    if choices and all((c.get("delta") or {}) in ({"role": "assistant"}, {"role": "assistant", "content": ""})
                       and not c.get("finish_reason") for c in choices):
        return None  # the continuation's role preamble: the client already has one
    obj["id"], obj["created"], obj["model"] = t.id or obj.get("id"), t.created or obj.get("created"), \
        t.model or obj.get("model")
    usage = obj.get("usage")
    read = usage_from_obj(usage)
    if read is not None:  # count the answer as one: the first part's tokens were re-read as prompt
        prompt = max(read.prompt_tokens - t.deltas, 0)
        completion = read.completion_tokens + t.deltas
        usage.update(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def finish_events(t: Transcript) -> bytes:
    """The end of a stream whose answer was complete when it broke (or that had no tokens left)."""
    closing = b""
    if not t.finished:
        choice = {"index": 0, "text": ""} if t.object == "text_completion" else {"index": 0, "delta": {}}
        chunk = {"id": t.id, "object": t.object or "chat.completion.chunk", "created": t.created, "model": t.model,
                 "choices": [{**choice, "logprobs": None, "finish_reason": "length"}]}
        closing = b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    return closing + b"data: [DONE]\n\n"
