"""The LLM agent generator: asks any OpenAI-compatible endpoint (the Tensormux gateway included) for a
candidate, with the op's reference, its inputs and a playbook bundle in the prompt, and feeds each verdict
back, until the candidate or cost budget is spent."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging

import aiohttp

from tmx_forge.domain.agent_prompt import SYSTEM, Budget, extract_code, feedback_message, first_message
from tmx_forge.domain.candidates import Candidate

log = logging.getLogger(__name__)


class AgentError(RuntimeError):
    pass


def _describe(inputs: tuple) -> str:
    parts = []
    for n, t in enumerate(inputs):
        if hasattr(t, "shape"):
            parts.append(f"#{n} {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}")
        else:
            parts.append(f"#{n} {t!r}")
    return "; ".join(parts)


class AgentGenerator:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, model: str, api_key: str, budget: Budget,
                 playbook_chars: int = 12000, timeout_s: float = 300.0) -> None:
        if not base_url or not model:
            raise AgentError("the agent generator needs TMX_FORGE_AGENT_BASE_URL and TMX_FORGE_AGENT_MODEL")
        self.session = session
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.budget = budget
        self.playbook_chars = playbook_chars
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.messages: list[dict] = []

    def start(self, op, dtype_name: str, target: str, shapes: list[list[int]], reference_source: str = "") -> None:
        """`reference_source`: a custom op's reference module (its inputs then come from the sandboxed oracle
        behind `op.make_inputs`); a library op's reference is read from the op itself."""
        import torch

        from tmx_kernels.skills import Library

        library = Library.load()
        playbooks = library.bundle([s.name for s in library.for_op(op.name)], self.playbook_chars)
        tol = op.tolerances[getattr(torch, dtype_name)]
        inputs = op.make_inputs(shapes[0], getattr(torch, dtype_name), 0, "cpu")
        self.messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": first_message(
                op.name, dtype_name, target, shapes, reference_source or inspect.getsource(op.reference),
                _describe(inputs),
                f"atol {tol.atol}, rtol {tol.rtol} ({tol.why})", playbooks)},
        ]

    @property
    def prompt_hash(self) -> str:
        """sha256 of the opening prompt (system + first user message): the provenance of what it wrote."""
        opening = json.dumps(self.messages[:2], sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(opening).hexdigest()

    async def propose(self, last_verdict=None) -> Candidate | None:
        """The next candidate, or None when the budget is spent. `last_verdict` is the previous candidate's."""
        if last_verdict is not None:
            self.messages.append({"role": "user", "content": feedback_message(
                last_verdict.reason_code, last_verdict.reason, last_verdict.speedups)})
        while self.budget.exhausted is None:
            reply = await self._ask()
            self.budget.candidates += 1  # every answer counts, with or without code, so a free endpoint ends too
            self.messages.append({"role": "assistant", "content": reply})
            code = extract_code(reply)
            if code is None:
                self.messages.append({"role": "user", "content": "No ```python code block found. Answer with "
                                                                 "the whole module in one code block."})
                continue
            return Candidate(code, label=f"agent #{self.budget.candidates}")
        log.info("agent budget exhausted", extra={"why": self.budget.exhausted})
        return None

    async def _ask(self) -> str:
        body = {"model": self.model, "messages": self.messages, "temperature": 0.2}
        try:
            async with self.session.post(self.url, json=body, headers=self.headers, timeout=self.timeout) as resp:
                payload = await resp.json(content_type=None)
                if resp.status != 200:
                    raise AgentError(f"the model endpoint answered {resp.status}: {str(payload)[:300]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AgentError(f"the model endpoint is unreachable: {type(exc).__name__}: {exc}") from None
        usage = payload.get("usage") or {}
        self.budget.spend(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise AgentError(f"not a chat completion: {str(payload)[:300]}") from None
