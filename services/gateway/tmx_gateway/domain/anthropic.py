"""Anthropic Messages API <-> OpenAI chat completions, so Anthropic clients reach OpenAI-compatible engines.

Pure translation: requests (system, text/image/tool_use/tool_result blocks, tools, tool_choice, stop
sequences, extended thinking), responses (content blocks, stop reasons, usage) and the streaming event sequence.

Extended thinking: a reasoning model behind vLLM or SGLang (run with a reasoning parser) answers its reasoning
apart from its text (`reasoning_content`, or `reasoning` in newer vLLM); it becomes a `thinking` block before
the text, as Anthropic's models give theirs. Its signature is empty: an engine signs nothing. Thinking blocks a
client sends back in an assistant turn are dropped, as Anthropic drops earlier turns' thinking from the context.
`thinking: {type: enabled|disabled}` reaches the chat template as `enable_thinking` (Qwen3's switch; templates
without it ignore it); its `budget_tokens` is checked as Anthropic checks it but not enforced: the engines'
chat APIs have no thinking budget."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from tmx_gateway.domain import json_bodies
from tmx_gateway.domain.metering import Usage, usage_from_obj
from tmx_gateway.domain.sse import split_events


class AnthropicRequestError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotACompletion(ValueError):
    """A backend's answer (or a chunk of its stream) is not shaped as a chat completion, so it has no Anthropic
    translation."""


STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text(b) for b in content if isinstance(b, dict) and b.get("type") == "text")
    raise AnthropicRequestError("content must be a string or a list of content blocks")


def _text(block: dict) -> str:
    text = block.get("text", "")
    if not isinstance(text, str):
        raise AnthropicRequestError("a text block's text must be a string")
    return text


def _checked(body: dict) -> None:
    """The request's optional fields have the types the Messages API gives them (the rest `to_openai` checks as
    it reads them)."""
    if not isinstance(body.get("stream", False), bool):
        raise AnthropicRequestError("stream: must be a boolean")
    for name in ("temperature", "top_p", "top_k"):
        value = body.get(name)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise AnthropicRequestError(f"{name}: must be a number")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(x, str) for x in stops)):
        raise AnthropicRequestError("stop_sequences: must be a list of strings")
    if not isinstance(body.get("metadata") or {}, dict):
        raise AnthropicRequestError("metadata: must be an object")
    user = (body.get("metadata") or {}).get("user_id")
    if user is not None and not isinstance(user, str):
        raise AnthropicRequestError("metadata.user_id: must be a string")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise AnthropicRequestError("tools: must be a list of tools")
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise AnthropicRequestError(f"tools.{i}.name: field required")
        if not isinstance(tool.get("description", ""), str):
            raise AnthropicRequestError(f"tools.{i}.description: must be a string")
        if not isinstance(tool.get("input_schema") or {}, dict):
            raise AnthropicRequestError(f"tools.{i}.input_schema: must be an object")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, dict):
        raise AnthropicRequestError("tool_choice: must be an object")
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
            raise AnthropicRequestError("thinking: must be an object of type 'enabled' or 'disabled'")
        budget = thinking.get("budget_tokens")
        max_tokens = body.get("max_tokens")
        if thinking["type"] == "enabled" and (type(budget) is not int or budget < 1024 or (
                type(max_tokens) is int and budget >= max_tokens)):
            raise AnthropicRequestError("thinking.budget_tokens: must be an integer of at least 1024, below max_tokens")


def _document_text(block: dict, i: int) -> str:
    """A document block as the text an engine reads: a plain-text source, or a content source's text blocks,
    after its title and context, set apart by blank lines. A PDF (base64, URL or file) has no text here: an
    engine takes none."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "text" and isinstance(source.get("data"), str):
        text = source["data"]
    elif kind == "content":
        text = _text_of(source.get("content", ""))
    else:
        raise AnthropicRequestError(f"messages.{i}: a document's source must be text or content blocks (got "
                                    f"{kind!r}): an OpenAI-compatible engine reads no PDF; send its text")
    heading = [value for name in ("title", "context") if isinstance(value := block.get(name), str) and value]
    return "\n\n".join([*heading, text]) + "\n\n"  # set apart from what follows it


def _blocks(content) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise AnthropicRequestError("content must be a string or a list of content blocks")
    return content


def to_openai(body: dict) -> dict:
    """An Anthropic /v1/messages body as an OpenAI /v1/chat/completions body (always with usage)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise AnthropicRequestError("model: field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise AnthropicRequestError("max_tokens: must be a positive integer")
    messages_in = body.get("messages")
    if not isinstance(messages_in, list) or not messages_in:
        raise AnthropicRequestError("messages: must be a non-empty list")
    _checked(body)
    messages: list[dict] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system)})
    for i, message in enumerate(messages_in):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise AnthropicRequestError(f"messages.{i}.role: must be 'user' or 'assistant'")
        role = message["role"]
        parts, tool_calls, tool_results = [], [], []
        for block in _blocks(message.get("content", "")):
            kind = block.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": _text(block)})
            elif kind == "image" and role == "user":
                source = block.get("source")
                if not isinstance(source, dict):
                    raise AnthropicRequestError(f"messages.{i}: an image block's source must be an object")
                if source.get("type") == "base64":
                    url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
                else:
                    url = source.get("url", "")
                parts.append({"type": "image_url", "image_url": {"url": url}})
            elif kind == "tool_use" and role == "assistant":
                tool_calls.append({"id": block.get("id") or f"toolu_{uuid.uuid4().hex[:24]}", "type": "function",
                                   "function": {"name": block.get("name", ""),
                                                "arguments": json.dumps(block.get("input") or {})}})
            elif kind == "document" and role == "user":
                parts.append({"type": "text", "text": _document_text(block, i)})
            elif kind in ("thinking", "redacted_thinking") and role == "assistant":
                continue  # an earlier turn's thinking: not part of the context (see the module's note)
            elif kind == "tool_result" and role == "user":
                result = block.get("content", "")
                tool_results.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
                                     "content": result if isinstance(result, str) else _text_of(result)})
            else:
                raise AnthropicRequestError(f"messages.{i}: unsupported content block {kind!r} for role {role}")
        messages.extend(tool_results)
        if parts or tool_calls:
            text_only = all(p["type"] == "text" for p in parts)
            out: dict = {"role": role, "content": "".join(p["text"] for p in parts) if text_only else parts}
            if tool_calls:
                out["tool_calls"] = tool_calls
            messages.append(out)
    result = {"model": body["model"], "messages": messages, "max_tokens": max_tokens,
              "stream": bool(body.get("stream"))}
    if result["stream"]:
        result["stream_options"] = {"include_usage": True}
    for name in ("temperature", "top_p", "top_k"):  # top_k: vLLM's and SGLang's sampling parameter
        if body.get(name) is not None:
            result[name] = body[name]
    if body.get("thinking"):
        result["chat_template_kwargs"] = {"enable_thinking": body["thinking"]["type"] == "enabled"}
    if body.get("stop_sequences"):
        result["stop"] = list(body["stop_sequences"])
    if (body.get("metadata") or {}).get("user_id"):
        result["user"] = body["metadata"]["user_id"]
    if body.get("tools"):
        result["tools"] = [{"type": "function", "function": {
            "name": t.get("name", ""), "description": t.get("description", ""),
            "parameters": t.get("input_schema") or {"type": "object"}}} for t in body["tools"]]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        result["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(choice.get("type")) or \
            {"type": "function", "function": {"name": choice.get("name", "")}}
        if choice.get("disable_parallel_tool_use") is True:
            result["parallel_tool_calls"] = False
    return result


def to_tokenize(body: dict) -> dict:
    """An Anthropic /v1/messages/count_tokens body as a vLLM /tokenize body: the messages, system prompt and
    tools a Messages request would send, rendered by the backend's chat template with its generation prompt,
    as a completion of them would read them (the thinking switch included). It has no max_tokens or stream to
    check (any thinking budget is below the one given here)."""
    translated = to_openai({**body, "max_tokens": 1 << 31, "stream": False})
    return {"model": translated["model"], "messages": translated["messages"], "add_generation_prompt": True,
            **{name: translated[name] for name in ("tools", "chat_template_kwargs") if name in translated}}


def _usage(usage) -> dict:
    """An OpenAI usage as Anthropic's; what cannot be read as a count (see `metering.usage_from_obj`) counts 0."""
    read = usage_from_obj(usage) or Usage()
    cached = min(read.cached_tokens, read.prompt_tokens)
    return {"input_tokens": read.prompt_tokens - cached, "output_tokens": read.completion_tokens,
            "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}


def _stop(choice: dict) -> tuple[str, str | None]:
    """A choice's stop reason as Anthropic's, and the stop sequence that ended it: vLLM names the stop string
    that matched in `stop_reason`, SGLang in `matched_stop` (a token id there is no sequence of the client's)."""
    finish_reason = choice.get("finish_reason")
    if finish_reason == "stop":
        matched = choice.get("stop_reason", choice.get("matched_stop"))
        if isinstance(matched, str) and matched:
            return "stop_sequence", matched
    return (STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"), None


def _object(value, what: str) -> dict:
    """`value` if it is a JSON object (a missing one, None, is empty), else NotACompletion."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NotACompletion(f"{what} is not an object")
    return value


def _array(value, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise NotACompletion(f"{what} is not an array")
    return value


def _tool_call(call) -> tuple[dict, dict]:
    """A tool call and its function, both objects; the function's name and arguments strings where present."""
    function = _object(_object(call, "a tool call").get("function"), "a tool call's function")
    arguments = function.get("arguments")
    if not isinstance(function.get("name", ""), str) or not (arguments is None or isinstance(arguments, str)):
        raise NotACompletion("a tool call's name or arguments is not a string")
    return call, function


def _reasoning(message: dict, what: str) -> str:
    """A message's or a delta's reasoning, as vLLM (`reasoning_content`; `reasoning` since 0.10) or SGLang
    (`reasoning_content`) sends it; "" without one."""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        raise NotACompletion(f"{what}'s reasoning is not a string")
    return reasoning or ""


def from_openai(response, model: str) -> dict:
    """An OpenAI chat completion as an Anthropic message; NotACompletion where it is not shaped as one."""
    response = _object(response, "the answer")
    choice = _object((_array(response.get("choices"), "choices") or [{}])[0], "a choice")
    message = _object(choice.get("message"), "a choice's message")
    content = []
    reasoning = _reasoning(message, "a message")
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if text is not None and not isinstance(text, str):
        raise NotACompletion("a message's content is not a string")
    if text:
        content.append({"type": "text", "text": text})
    for call, function in map(_tool_call, _array(message.get("tool_calls"), "tool_calls")):
        try:
            arguments = json_bodies.parse_exact(function.get("arguments") or "{}")
        except ValueError:
            arguments = {"_raw": function.get("arguments")}
        content.append({"type": "tool_use", "id": str(call.get("id", "")), "name": function.get("name", ""),
                        "input": arguments})
    if not isinstance(response.get("id"), (str, type(None))):
        raise NotACompletion("the answer's id is not a string")
    stop_reason, stop_sequence = _stop(choice)
    return {"id": "msg_" + (response.get("id") or uuid.uuid4().hex).removeprefix("chatcmpl-"), "type": "message",
            "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "usage": _usage(response.get("usage"))}


def error_body(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               502: "api_error", 503: "overloaded_error", 529: "overloaded_error"}


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass
class StreamTranslator:
    """Feeds OpenAI SSE bytes in, yields Anthropic SSE events out (message_start, content blocks with thinking,
    text and tool-input deltas, message_delta with the stop reason and usage, message_stop)."""

    model: str
    message_id: str = field(default_factory=lambda: "msg_" + uuid.uuid4().hex)
    _pending: bytes = b""
    _started: bool = False
    _block: int = -1
    _block_kind: str = ""
    _tools: dict[int, int] = field(default_factory=dict)  # OpenAI tool index -> Anthropic block index
    _stop: str = "end_turn"
    _stop_sequence: str | None = None
    _usage: dict = field(default_factory=dict)
    _done: bool = False

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [_sse("message_start", {"type": "message_start", "message": {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}})]

    def _close_block(self) -> list[bytes]:
        if self._block_kind:
            self._block_kind = ""
            return [_sse("content_block_stop", {"type": "content_block_stop", "index": self._block})]
        return []

    def _open_block(self, kind: str, block: dict) -> list[bytes]:
        out = self._close_block()
        self._block += 1
        self._block_kind = kind
        return out + [_sse("content_block_start", {"type": "content_block_start", "index": self._block,
                                                   "content_block": block})]

    def _delta(self, kind: str, block: dict, delta: dict) -> list[bytes]:
        """`delta` to the open block of `kind`, opening one (`block`) if another kind is open."""
        out = self._open_block(kind, block) if self._block_kind != kind else []
        return out + [_sse("content_block_delta", {"type": "content_block_delta", "index": self._block,
                                                   "delta": delta})]

    def feed(self, chunk: bytes) -> list[bytes]:
        """The Anthropic events for `chunk`'s complete OpenAI events. An event that is not a chat completion chunk
        ends the stream with an error event: what follows it is not translated."""
        if self._done:
            return []
        events, self._pending = split_events(self._pending + chunk)
        out: list[bytes] = []
        for event in events:
            if not event.startswith(b"data:"):
                continue
            payload = event[5:].strip()
            if payload == b"[DONE]":
                continue
            try:
                parsed = _object(json_bodies.parse(payload), "an event")
                if "error" in parsed:  # the gateway's own SSE error (a broken upstream): pass it on
                    message = _object(parsed["error"], "an error").get("message", "")
                    out += self._start() + [_sse("error", error_body("api_error", str(message)))]
                    self._done = True  # the stream failed: no message_stop pretending it ended well
                    return out
                out += self._start()
                out += self._translate(parsed)
            except (ValueError, RecursionError) as exc:  # NotACompletion or not JSON at all
                self._done = True
                return out + self._start() + [_sse("error", error_body(
                    "api_error", f"the backend sent an event that is not a chat completion chunk ({exc})"))]
        return out

    def _translate(self, chunk: dict) -> list[bytes]:
        out: list[bytes] = []
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in _array(chunk.get("choices"), "choices"):
            delta = _object(_object(choice, "a choice").get("delta"), "a delta")
            reasoning = _reasoning(delta, "a delta")
            if reasoning:
                out += self._delta("thinking", {"type": "thinking", "thinking": "", "signature": ""},
                                   {"type": "thinking_delta", "thinking": reasoning})
            text = delta.get("content")
            if text is not None and not isinstance(text, str):
                raise NotACompletion("a delta's content is not a string")
            if text:
                out += self._delta("text", {"type": "text", "text": ""}, {"type": "text_delta", "text": text})
            for call, function in map(_tool_call, _array(delta.get("tool_calls"), "tool_calls")):
                index = call.get("index", 0)
                if not isinstance(index, int):
                    raise NotACompletion("a tool call's index is not an integer")
                if index not in self._tools:
                    out += self._open_block("tool", {"type": "tool_use", "id": str(call.get("id", "")),
                                                     "name": function.get("name", ""), "input": {}})
                    self._tools[index] = self._block
                if function.get("arguments"):
                    out.append(_sse("content_block_delta", {
                        "type": "content_block_delta", "index": self._tools[index],
                        "delta": {"type": "input_json_delta", "partial_json": function["arguments"]}}))
            if choice.get("finish_reason"):
                self._stop, self._stop_sequence = _stop(choice)
        return out

    def finish(self) -> list[bytes]:
        if self._done:
            return []
        self._done = True
        usage = _usage(self._usage)
        return self._start() + self._close_block() + [
            _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": self._stop,
                                                                       "stop_sequence": self._stop_sequence},
                                   "usage": {"output_tokens": usage["output_tokens"]}}),
            _sse("message_stop", {"type": "message_stop"}),
        ]
