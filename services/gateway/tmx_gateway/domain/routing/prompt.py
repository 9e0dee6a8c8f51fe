"""The prompt as prefix-aware routing sees it: chat messages rendered in order (role and text), or the
completion prompt. It need not match the engine's chat template, only be stable: equal conversations render
equally, and a conversation that grows keeps its earlier rendering as a prefix."""

from __future__ import annotations

CHARS_PER_TOKEN = 4


def prompt_text(payload: dict) -> str:
    messages = payload.get("messages")
    if messages is None and "input" in payload:  # the Responses API: instructions, then the input's messages
        given = payload["input"]
        messages = [{"role": "user", "content": given}] if isinstance(given, str) else given
        if isinstance(messages, list) and isinstance(payload.get("instructions"), str):
            messages = [{"role": "system", "content": payload["instructions"]}, *messages]
    if isinstance(messages, list):
        parts = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            content = message.get("content") or ""
            if isinstance(content, list):
                content = "".join(text for p in content
                                  if isinstance(p, dict) and isinstance(text := p.get("text"), str))
            parts.append(f"<{message.get('role', 'user')}>{content}\n")
        return "".join(parts)
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        return prompt[0]
    return ""


def estimate_tokens(text: str, body_bytes: int) -> int:
    return max(1, (len(text) if text else body_bytes) // CHARS_PER_TOKEN)
