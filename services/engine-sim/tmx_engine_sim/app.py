"""Composition root: builds the engine, its runner and HTTP app, and serves them with uvicorn."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from tmx_engine_sim.domain.engine import EngineCore
from tmx_engine_sim.domain.kvcache import PrefixCache
from tmx_engine_sim.domain.timing import TimingModel
from tmx_engine_sim.faults import Faults
from tmx_engine_sim.http_api import SimApi
from tmx_engine_sim.metrics import EngineMetrics
from tmx_engine_sim.runner import EngineRunner
from tmx_engine_sim.settings import Settings

log = logging.getLogger(__name__)


def build_runner(settings: Settings) -> EngineRunner:
    timing = TimingModel(
        prefill_tok_s=settings.prefill_tok_s,
        base_step_s=settings.base_step_ms / 1000,
        per_seq_step_s=settings.per_seq_step_ms / 1000,
    )
    core = EngineCore(PrefixCache(settings.num_gpu_blocks, settings.block_size), timing, settings.max_num_seqs)
    return EngineRunner(core, EngineMetrics(settings.served_models[0]), settings.time_scale)


async def serve(settings: Settings) -> None:
    if not settings.served_models:
        raise SystemExit("TMX_ENGINE_SIM_MODELS must name at least one model")
    if settings.slow_start_s > 0:
        await asyncio.sleep(settings.slow_start_s)
    runner = build_runner(settings)
    faults = Faults(error_rate=settings.error_rate, stall_s=settings.stall_s,
                    drop_after_tokens=settings.drop_after_tokens)
    server: uvicorn.Server | None = None

    def refuse() -> None:
        for listener in getattr(server, "servers", []):
            listener.close()

    api = SimApi(settings, runner, faults, refuse)
    config = uvicorn.Config(api.app(), host=settings.host, port=settings.port, log_level="warning",
                            access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    runner.start()
    try:
        await server.serve()
    finally:
        await runner.stop()
