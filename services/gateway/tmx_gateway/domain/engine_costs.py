"""The gateway's cost model of one engine replica, for the estimates it makes where the engine tells it nothing
(routing's TTFT estimate, when a non-streamed prompt is presumed prefilled). Reference figures of a vLLM replica
on one GPU, as llm-d-inference-sim and SMG's mock worker use them: prefill ~8000 prompt tokens/s; a decode step
of ~6 ms that grows ~0.35 ms with each running sequence."""

PREFILL_MS_PER_TOKEN = 1 / 8.0
STEP_MS = 6.0
STEP_MS_PER_SEQ = 0.35


def prefill_eta_ms(queued_prompt_tokens: int, prompt_tokens: int) -> float:
    """When a prompt sent now should have its first token: the prefill queued ahead of it, its own, one step."""
    return (queued_prompt_tokens + prompt_tokens) * PREFILL_MS_PER_TOKEN + STEP_MS
