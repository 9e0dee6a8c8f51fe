"""The engine core: continuous batching over the prefix cache, advanced one step at a time.

It knows nothing of clocks or I/O: `step()` returns how long the step takes (simulated seconds) and which
sequences produced a token, so tests replay it on a virtual clock and the runner on a real one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tmx_engine_sim.domain.kvcache import Allocation, PrefixCache
from tmx_engine_sim.domain.timing import TimingModel


class SequenceTooLong(ValueError):
    pass


@dataclass(eq=False)
class Sequence:
    id: str
    prompt_tokens: list[int]
    max_tokens: int
    allocation: Allocation | None = None
    generated: int = 0
    aborted: bool = False

    @property
    def cached_tokens(self) -> int:
        return self.allocation.cached_tokens if self.allocation else 0

    @property
    def finished(self) -> bool:
        return self.aborted or self.generated >= self.max_tokens


@dataclass
class StepResult:
    duration_s: float
    admitted: list[Sequence] = field(default_factory=list)
    emitted: list[Sequence] = field(default_factory=list)
    finished: list[Sequence] = field(default_factory=list)
    prefill_tokens: int = 0


class EngineCore:
    def __init__(self, cache: PrefixCache, timing: TimingModel, max_num_seqs: int = 256) -> None:
        self.cache = cache
        self.timing = timing
        self.max_num_seqs = max_num_seqs
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    def add(self, seq: Sequence) -> None:
        if self.cache.blocks_needed(len(seq.prompt_tokens), seq.max_tokens) > self.cache.num_blocks:
            raise SequenceTooLong(
                f"prompt ({len(seq.prompt_tokens)} tokens) plus max_tokens ({seq.max_tokens}) exceeds the KV cache"
            )
        self.waiting.append(seq)

    def abort(self, seq: Sequence) -> None:
        seq.aborted = True
        if seq in self.waiting:
            self.waiting.remove(seq)

    def step(self) -> StepResult:
        admitted: list[Sequence] = []
        prefill_tokens = 0
        while self.waiting and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            allocation = self.cache.try_allocate(seq.prompt_tokens, seq.max_tokens)
            if allocation is None:
                break  # FIFO: the head of the queue waits for space; nothing jumps it
            self.waiting.popleft()
            seq.allocation = allocation
            prefill_tokens += len(seq.prompt_tokens) - allocation.cached_tokens
            admitted.append(seq)
            self.running.append(seq)
        duration = self.timing.step_seconds(len(self.running), prefill_tokens)
        emitted, finished, still_running = [], [], []
        for seq in self.running:
            if not seq.aborted:
                seq.generated += 1
                emitted.append(seq)
            if seq.finished:
                self.cache.release(seq.allocation)
                finished.append(seq)
            else:
                still_running.append(seq)
        self.running = still_running
        return StepResult(duration, admitted, emitted, finished, prefill_tokens)
