"""A deterministic word-level tokenizer: enough to count tokens, hash prompt blocks and generate text."""

from __future__ import annotations

import re
import zlib

VOCAB_SIZE = 50_000
_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORDS = (
    "the of and to in is that it for on with as was at by an be this are from or have not they which you "
    "one had were but all we when there can more if will each about how up out them then she many some so "
    "these would other into has her two like him see time could no make than first been its who now people"
).split()


def tokenize(text: str) -> list[int]:
    return [zlib.crc32(piece.encode()) % VOCAB_SIZE for piece in _TOKEN.findall(text)]


def generated_word(seed: int, index: int) -> str:
    """The index-th word the simulator emits for a prompt whose hash is `seed`."""
    return _WORDS[(seed * 31 + index * 17) % len(_WORDS)]


def message_problem(message: dict) -> str | None:
    """Why a chat message is malformed (as vLLM's request validation would refuse it), or None."""
    if not isinstance(message.get("role", "user"), str):
        return "role must be a string"
    content = message.get("content")
    if content is None or isinstance(content, str):
        return None
    if not isinstance(content, list):
        return "content must be a string or a list of content parts"
    for part in content:
        if not isinstance(part, dict) or not isinstance(part.get("type", "text"), str):
            return "a content part must be an object with a type"
        if part.get("type", "text") == "text" and not isinstance(part.get("text"), str):
            return "a text part's text must be a string"
    return None


def message_text(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


def render_chat(messages: list[dict]) -> str:
    """Flatten OpenAI chat messages into one prompt text, as a chat template would."""
    parts = [f"<|{message.get('role', 'user')}|>\n{message_text(message)}\n" for message in messages]
    parts.append("<|assistant|>\n")
    return "".join(parts)


def continuation(messages: list[dict]) -> tuple[list[dict], str] | None:
    """vLLM's and SGLang's `continue_final_message`: the final assistant message is a prefix to continue.
    Returns (the conversation before it, the prefix), or None when the last message is not the assistant's."""
    if len(messages) < 2 or messages[-1].get("role") != "assistant":
        return None
    return messages[:-1], message_text(messages[-1])
