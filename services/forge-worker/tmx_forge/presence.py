"""This worker's record in the forge workers bucket while it runs (events.v1.ForgeWorker): what the registry
checks a job against at submission, and what `tmx forge workers` lists."""

from __future__ import annotations

import asyncio
import logging
import time

import nats.errors

from tensormux.events.v1 import events_pb2
from tmx_eventbus import EventBus, subjects
from tmx_eventbus.streams import FORGE_WORKER_TTL_S
from tmx_forge.settings import Settings

log = logging.getLogger(__name__)


def describe(settings: Settings) -> events_pb2.ForgeWorker:
    """What this worker can do: the kernel library's ops, and its generators (the agent only with a model
    endpoint to ask)."""
    import torch
    import triton

    from tmx_kernels import op_names

    generators = ["template", "inductor", "file"]
    if settings.agent_base_url and settings.agent_model:
        generators.append("agent")
    return events_pb2.ForgeWorker(worker_id=settings.worker_id, target=settings.target, ops=op_names(),
                                  generators=generators, torch=torch.__version__, triton=triton.__version__,
                                  started_at_unix_ms=int(time.time() * 1000))


async def keep_present(bus: EventBus, record: events_pb2.ForgeWorker, every_s: float = FORGE_WORKER_TTL_S / 3) -> None:
    """Put `record` now and every `every_s` (a third of the bucket's time to live: two missed puts are
    forgiven), until cancelled; then delete it, so the worker leaves the list at once when it stops."""
    kv = await bus.forge_workers_kv()
    key = subjects.forge_worker_key(record.target, record.worker_id)
    try:
        while True:
            record.seen_at_unix_ms = int(time.time() * 1000)
            try:
                await kv.put(key, record.SerializeToString())
            except (asyncio.TimeoutError, nats.errors.Error) as exc:  # NATS away: the bus logs the outage
                log.debug("worker record not put", extra={"error": repr(exc)})
            await asyncio.sleep(every_s)
    finally:
        try:
            await asyncio.wait_for(kv.delete(key), 2.0)
        except (asyncio.TimeoutError, nats.errors.Error) as exc:
            log.info("worker record not deleted; it lapses on its own", extra={"error": repr(exc)})
