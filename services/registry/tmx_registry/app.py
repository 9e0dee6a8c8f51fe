"""Composition root of the registry: migrate, connect, serve."""

from __future__ import annotations

import asyncio
import logging

from tensormux.forge.v1 import forge_pb2, forge_pb2_grpc
from tensormux.registry.v1 import registry_pb2, registry_pb2_grpc
from tmx_eventbus import EventBus
from tmx_grpcserver import GrpcServer, serve_until
from tmx_registry.db.migrate import upgrade
from tmx_registry.events import JobWatchHub, RegistryEvents
from tmx_registry.grpc_api import ForgeServicer, RegistryServicer
from tmx_registry.repository import Repository, make_engine
from tmx_registry.settings import Settings
from tmx_telemetry import start_metrics_server

log = logging.getLogger(__name__)

REGISTRY_SERVICE = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
FORGE_SERVICE = forge_pb2.DESCRIPTOR.services_by_name["ForgeService"].full_name


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    if not settings.nats_url:
        raise SystemExit("TMX_REGISTRY_NATS_URL is required")
    await asyncio.to_thread(upgrade, settings.database_url)
    engine = make_engine(settings.database_url)
    repo = Repository(engine)
    bus = await EventBus.connect(settings.nats_url, name="registry")
    await bus.provision()
    hub = JobWatchHub()
    events = RegistryEvents(bus, repo, hub)
    server = GrpcServer(
        [
            (registry_pb2_grpc.add_RegistryServiceServicer_to_server, RegistryServicer(repo, events), REGISTRY_SERVICE),
            (forge_pb2_grpc.add_ForgeServiceServicer_to_server, ForgeServicer(repo, events, hub), FORGE_SERVICE),
        ],
        host=settings.host,
        port=settings.port,
    )
    await server.start()
    start_metrics_server(settings.metrics_port)
    log.info("registry serving", extra={"port": server.port})
    await serve_until(stop, server, background={
        "progress-consumer": events.consume_progress(),
        "outbox": events.redispatch_loop(settings.redispatch_interval_s),
    }, cleanup=[bus.close, engine.dispose])
