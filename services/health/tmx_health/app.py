"""Composition root of the health service."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from tensormux.health.v1 import health_pb2, health_pb2_grpc
from tmx_config import load_fleet
from tmx_eventbus import EventBus
from tmx_grpcserver import GrpcServer
from tmx_health.domain.directory import Directory
from tmx_health.domain.state_machine import Thresholds
from tmx_health.events import StatePublisher
from tmx_health.grpc_api import HealthServicer
from tmx_health.monitor import Monitor
from tmx_health.prober import Prober
from tmx_health.settings import Settings
from tmx_telemetry import start_metrics_server

log = logging.getLogger(__name__)

SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["HealthService"].full_name


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    if not settings.nats_url:
        raise SystemExit("TMX_HEALTH_NATS_URL is required")
    thresholds = Thresholds(fall=settings.fall_threshold, rise=settings.rise_threshold)
    fleet = load_fleet(settings.fleet_file)
    directory = Directory()
    for spec in fleet.backends:
        directory.register(spec.id, spec.url, tuple(spec.models))
    bus = await EventBus.connect(settings.nats_url, name="health")
    await bus.provision()
    publisher = StatePublisher(bus)
    await publisher.open()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    monitor = Monitor(directory, Prober(session, settings.probe_path, settings.probe_timeout_s), publisher,
                      thresholds, settings.probe_interval_s)
    resumed = monitor.resume(await publisher.load())
    server = GrpcServer([(health_pb2_grpc.add_HealthServiceServicer_to_server, HealthServicer(monitor), SERVICE_NAME)],
                        host=settings.host, port=settings.port)
    await server.start()
    start_metrics_server(settings.metrics_port)
    probing = asyncio.create_task(monitor.run(), name="probe-loop")
    await server.mark_serving()
    log.info("health serving", extra={"port": server.port, "backends": len(directory.backends), "resumed": resumed})
    try:
        await stop.wait()
    finally:
        probing.cancel()
        await asyncio.gather(probing, return_exceptions=True)
        await server.stop()
        await session.close()
        await bus.close()
