"""Drives the engine core in real time: sleeps each step's duration (times the time scale) and hands every
emitted token to the request waiting on it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tmx_engine_sim.domain.engine import EngineCore, Sequence
from tmx_engine_sim.metrics import EngineMetrics

DONE = None


@dataclass(eq=False)
class Tracked:
    seq: Sequence
    tokens: asyncio.Queue = field(default_factory=asyncio.Queue)
    arrived: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None


class EngineRunner:
    def __init__(self, core: EngineCore, metrics: EngineMetrics, time_scale: float) -> None:
        self.core = core
        self.metrics = metrics
        self.time_scale = time_scale
        self._tracked: dict[int, Tracked] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="engine-loop")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def submit(self, seq: Sequence) -> Tracked:
        self.core.add(seq)
        tracked = Tracked(seq)
        self._tracked[id(seq)] = tracked
        self._wakeup.set()
        self._publish_gauges()
        return tracked

    def abort(self, tracked: Tracked) -> None:
        self.core.abort(tracked.seq)
        if tracked.seq.allocation is None:  # never admitted: nothing to free, forget it now
            self._tracked.pop(id(tracked.seq), None)

    async def _loop(self) -> None:
        m = self.metrics
        while True:
            if self.core.idle:
                self._wakeup.clear()
                await self._wakeup.wait()
            result = self.core.step()
            for seq in result.admitted:
                m.label(m.prefix_queries).inc(len(seq.prompt_tokens))
                m.label(m.prefix_hits).inc(seq.cached_tokens)
                m.label(m.prompt_tokens).inc(len(seq.prompt_tokens))
            self._publish_gauges()
            if result.duration_s > 0:
                await asyncio.sleep(result.duration_s * self.time_scale)
            now = time.monotonic()
            for seq in result.emitted:
                tracked = self._tracked.get(id(seq))
                if tracked is None:
                    continue
                if tracked.first_token_at is None:
                    tracked.first_token_at = now
                    m.label(m.ttft).observe(now - tracked.arrived)
                tracked.tokens.put_nowait(seq.generated - 1)
            m.label(m.generation_tokens).inc(len(result.emitted))
            for seq in result.finished:
                tracked = self._tracked.pop(id(seq), None)
                if tracked is None:
                    continue
                tracked.tokens.put_nowait(DONE)
                if tracked.first_token_at is not None:
                    m.label(m.e2e).observe(now - tracked.arrived)
                    if seq.generated > 1:
                        m.label(m.tpot).observe((now - tracked.first_token_at) / (seq.generated - 1))

    def _publish_gauges(self) -> None:
        m = self.metrics
        m.label(m.running).set(len(self.core.running))
        m.label(m.waiting).set(len(self.core.waiting))
        m.label(m.kv_usage).set(self.core.cache.usage)
