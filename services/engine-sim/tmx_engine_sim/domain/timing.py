"""The simulator's timing model (all times in simulated seconds, before the time scale is applied).

One engine step admits waiting sequences (prefilling only their *uncached* prompt tokens) and decodes one
token for every running sequence:

    step = base_step_s + per_seq_step_s * running + uncached_prefill_tokens / prefill_tok_s

Defaults follow llm-d-inference-sim and SMG's mock worker: prefill ~8000 tok/s, decode step 6 ms +
0.35 ms per running sequence. So a cold 1024-token prompt waits ~134 ms for its first token while the same
prompt with 1008 tokens cached waits ~8 ms; a batch of 64 decodes at ~28 ms per token instead of ~6.4 ms.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TimingModel:
    prefill_tok_s: float = 8000.0
    base_step_s: float = 0.006
    per_seq_step_s: float = 0.00035

    def step_seconds(self, running: int, uncached_prefill_tokens: int) -> float:
        if running <= 0 and uncached_prefill_tokens <= 0:
            return 0.0
        return self.base_step_s + self.per_seq_step_s * running + uncached_prefill_tokens / self.prefill_tok_s

    def prefill_seconds(self, tokens: int) -> float:
        return tokens / self.prefill_tok_s
