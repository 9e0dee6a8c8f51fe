"""OpenAI's Responses API (`/v1/responses`, as vLLM serves it) over the simulator's chat completions: the input
becomes chat messages, and the completion (or its stream of chunks) becomes a Response (or its stream of typed
events). Text in and out only: no tools, no stored conversations."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator


class InputError(ValueError):
    """The request's input or instructions cannot be read as a conversation; the message says why."""


def messages_of(body: dict) -> list[dict]:
    """`instructions` and `input` (a string, or a list of messages whose content is a string or input_text
    parts) as chat messages."""
    instructions, given = body.get("instructions"), body.get("input")
    messages = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InputError("instructions must be a string")
        messages.append({"role": "system", "content": instructions})
    if isinstance(given, str):
        return [*messages, {"role": "user", "content": given}]
    if not isinstance(given, list) or not given:
        raise InputError("input must be a string or a non-empty list of messages")
    for item in given:
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant", "system", "developer"):
            raise InputError("each input item must be a message with a role of user, assistant, system or developer")
        content = item.get("content")
        if isinstance(content, list):
            if not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
                raise InputError("a message's content parts must have text")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise InputError("a message's content must be a string or a list of text parts")
        messages.append({"role": "system" if item["role"] == "developer" else item["role"], "content": content})
    return messages


def chat_body(body: dict, messages: list[dict]) -> dict:
    """The chat completion that answers the Responses request `body`."""
    out = {"model": body.get("model"), "messages": messages, "stream": body.get("stream", False),
           "stream_options": {"include_usage": True}}
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    return out


def usage_of(chat_usage: dict) -> dict:
    prompt, completion = chat_usage.get("prompt_tokens", 0), chat_usage.get("completion_tokens", 0)
    cached = (chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion}


def response_of(completion: dict, body: dict, text: str | None = None, usage: dict | None = None,
                status: str = "completed") -> dict:
    """A Response object for a chat completion (or, while streaming, for what is known of it)."""
    rid = "resp_" + completion["id"].removeprefix("chatcmpl-")
    if text is None and status == "completed":
        text = completion["choices"][0]["message"]["content"]
    output = [_message(rid, text, "completed")] if status == "completed" else []
    return {"id": rid, "object": "response", "created_at": completion.get("created", int(time.time())),
            "status": status, "model": completion.get("model", body.get("model")), "output": output,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "incomplete_details": None, "error": None, "parallel_tool_calls": False, "tool_choice": "auto",
            "tools": [], "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0),
            "usage": usage_of(usage if usage is not None else completion.get("usage") or {})
            if status == "completed" else None}


def _item_id(rid: str) -> str:
    """The id of a response's (one) output message."""
    return "msg_" + rid.removeprefix("resp_")


def _message(rid: str, text: str, status: str) -> dict:
    return {"type": "message", "id": _item_id(rid), "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


async def events_of(chunks: AsyncIterator[bytes], body: dict) -> AsyncIterator[bytes]:
    """The Responses stream for a chat completion stream (with its usage chunk): created, the output item and
    its text part opened, a delta per chunk's text, then all of it closed and the response completed."""
    seq = 0

    def event(kind: str, **fields) -> bytes:
        nonlocal seq
        seq += 1
        return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': seq - 1, **fields})}\n\n".encode()

    text, first, usage, pending = "", None, None, b""
    async for raw in chunks:
        pending += raw
        *complete, pending = pending.split(b"\n\n")
        for line in complete:
            data = line.removeprefix(b"data: ")
            if data == b"[DONE]":
                continue
            chunk = json.loads(data)
            if first is None:
                first = chunk
                started = response_of(chunk, body, status="in_progress")
                rid, item_id = started["id"], _item_id(started["id"])
                yield event("response.created", response=started)
                yield event("response.in_progress", response=started)
                yield event("response.output_item.added", output_index=0, item={**_message(rid, "", "in_progress"),
                                                                                  "content": []})
                yield event("response.content_part.added", item_id=item_id, output_index=0,
                            content_index=0, part={"type": "output_text", "text": "", "annotations": []})
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    text += delta
                    yield event("response.output_text.delta", item_id=item_id, output_index=0, content_index=0,
                                delta=delta)
    if first is None:
        return
    yield event("response.output_text.done", item_id=item_id, output_index=0, content_index=0, text=text)
    yield event("response.content_part.done", item_id=item_id, output_index=0, content_index=0,
                part={"type": "output_text", "text": text, "annotations": []})
    yield event("response.output_item.done", output_index=0, item=_message(rid, text, "completed"))
    yield event("response.completed", response=response_of(first, body, text=text, usage=usage or {}))
