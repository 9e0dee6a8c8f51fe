"""What the LLM agent generator says to the model and how it reads the answers. Pure: no I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

SYSTEM = """You write GPU kernels for an inference engine. You answer with one Python module in a single
```python code block. The module defines launch(*inputs, **config) that returns what the reference returns
(a tensor or a tuple of tensors, same shapes and dtypes). Import only torch, triton, triton.language, math,
functools, typing, dataclasses, itertools, operator. No file, network or process access, no dunder
attributes, no eval/exec/open, no global state shared between calls: a verifier runs your code in a sandbox
on inputs it generates itself, checks every output against an fp64 reference at fixed tolerances, and times
it against the better of eager PyTorch and torch.compile. Anything that games it is rejected."""

_CODE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def first_message(op: str, dtype: str, target: str, shapes: list[list[int]], reference_source: str,
                  inputs_description: str, tolerance: str, playbooks: str) -> str:
    return (f"Write a faster `{op}` for dtype {dtype} on target {target}, for input shapes "
            f"{json.dumps(shapes)} (the verifier adds odd shapes of its own).\n\n"
            f"Inputs (from the op's generator, shape {shapes[0]}): {inputs_description}\n"
            f"Tolerance: {tolerance}\n\nReference (computed in fp64, returned in the input dtype):\n"
            f"```python\n{reference_source.strip()}\n```\n\n"
            f"Engineering playbooks for this op:\n\n{playbooks.strip()}\n")


def feedback_message(reason_code: str, reason: str, speedups: dict[str, float]) -> str:
    if reason_code == "passed" and speedups:
        timing = ", ".join(f"{shape}: {s:.3g}x" for shape, s in speedups.items())
        return (f"Verified correct. Speedup against the baseline per shape: {timing}. Promotion needs a geometric "
                f"mean >= 1.10x with no shape below 1.0x. Improve it; answer with the whole module again.")
    return (f"Rejected ({reason_code}): {reason}\nFix it; answer with the whole module again.")


def extract_code(reply: str) -> str | None:
    """The first fenced code block of the reply (python or unlabelled), or None."""
    match = _CODE.search(reply or "")
    return match.group(1) if match else None


@dataclass
class Budget:
    """Candidates and money an agent job may spend; cost from the token usage the endpoint reports."""

    max_candidates: int
    max_cost_usd: float
    usd_per_1k_tokens: float
    candidates: int = 0
    cost_usd: float = 0.0

    def spend(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.cost_usd += (prompt_tokens + completion_tokens) / 1000 * self.usd_per_1k_tokens

    @property
    def exhausted(self) -> str | None:
        if self.candidates >= self.max_candidates:
            return f"candidate budget of {self.max_candidates} spent"
        if self.cost_usd >= self.max_cost_usd:
            return f"cost budget of ${self.max_cost_usd:g} spent (${self.cost_usd:.4f})"
        return None
