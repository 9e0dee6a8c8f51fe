"""Composition root of the forge worker: one NATS connection, one channel to the registry, one consumer."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import grpc

from tmx_eventbus import EventBus
from tmx_eventbus.streams import forge_jobs_consumer
from tmx_forge.presence import describe, keep_present
from tmx_forge.settings import Settings
from tmx_forge.worker import JobRunner
from tmx_telemetry import start_metrics_server

log = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    if not settings.nats_url or not settings.registry_addr:
        raise SystemExit("TMX_FORGE_NATS_URL and TMX_FORGE_REGISTRY_ADDR are required")
    bus = await EventBus.connect(settings.nats_url, name=f"forge-{settings.worker_id}")
    await bus.provision()
    channel = grpc.aio.insecure_channel(settings.registry_addr)
    http = aiohttp.ClientSession()
    runner = JobRunner(bus, channel, settings, http)
    start_metrics_server(settings.metrics_port)
    consuming = asyncio.create_task(bus.consume(forge_jobs_consumer(settings.target), runner.handle, batch=1))
    present = asyncio.create_task(keep_present(bus, await asyncio.to_thread(describe, settings)))
    log.info("forge worker consuming", extra={"target": settings.target, "worker": settings.worker_id})
    try:
        await stop.wait()
    finally:
        consuming.cancel()
        present.cancel()
        await asyncio.gather(consuming, present, return_exceptions=True)
        await channel.close()
        await http.close()
        await bus.close()
