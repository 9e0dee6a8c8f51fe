"""Composition root of the health service."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from tensormux.events.v1 import events_pb2
from tensormux.health.v1 import health_pb2, health_pb2_grpc
from tmx_config import load_fleet
from tmx_eventbus import EventBus
from tmx_grpcserver import GrpcServer, serve_until
from tmx_health.domain.directory import Directory
from tmx_health.domain.state_machine import Thresholds
from tmx_health.events import HEALTH_SIGNALS, StatePublisher, passive_verdict
from tmx_health.grpc_api import HealthServicer
from tmx_health.monitor import Monitor
from tmx_health.prober import Prober
from tmx_health.settings import Settings
from tmx_telemetry import start_metrics_server

log = logging.getLogger(__name__)

SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["HealthService"].full_name


def _passive_handler(monitor: Monitor):
    async def handle(outcomes: list) -> None:
        await monitor.passive([(o.backend_id, verdict, o.error or f"HTTP {o.http_status}") for o in outcomes
                               if o.backend_id and
                               (verdict := passive_verdict(o.http_status, o.request_at_fault)) is not None])

    return handle


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    if not settings.nats_url:
        raise SystemExit("TMX_HEALTH_NATS_URL is required")
    thresholds = Thresholds(fall=settings.fall_threshold, rise=settings.rise_threshold)
    fleet = load_fleet(settings.fleet_file)
    directory = Directory({m.name: tuple(m.aliases) for m in fleet.models})
    for spec in fleet.backends:
        backend = directory.register(spec.id, spec.url, tuple(spec.models))
        backend.interval_s, backend.timeout_s = spec.probe_interval_s, spec.probe_timeout_s
        if spec.fall_threshold or spec.rise_threshold:
            backend.thresholds = Thresholds(fall=spec.fall_threshold or thresholds.fall,
                                            rise=spec.rise_threshold or thresholds.rise)
    bus = await EventBus.connect(settings.nats_url, name="health")
    await bus.provision()
    publisher = StatePublisher(bus)
    await publisher.open()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    monitor = Monitor(directory, Prober(session, settings.probe_path, settings.probe_timeout_s), publisher,
                      thresholds, settings.probe_interval_s, settings.suspect_probe_interval_s)
    resumed = monitor.resume(await publisher.load())
    server = GrpcServer([(health_pb2_grpc.add_HealthServiceServicer_to_server, HealthServicer(monitor), SERVICE_NAME)],
                        host=settings.host, port=settings.port)
    await server.start()
    start_metrics_server(settings.metrics_port)
    log.info("health serving", extra={"port": server.port, "backends": len(directory.backends), "resumed": resumed})
    await serve_until(stop, server, background={
        "probe-loops": monitor.run(),
        "passive-signals": bus.consume_rows(HEALTH_SIGNALS, events_pb2.RequestOutcome, _passive_handler(monitor)),
    }, cleanup=[session.close, bus.close])
