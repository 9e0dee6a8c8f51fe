"""Composition root of the planner. Without NATS it plans from its catalogues alone (SERVING once bound);
with NATS and a fleet file it also learns from the gateways' outcomes (SERVING once connected)."""

from __future__ import annotations

import asyncio
import logging

from tensormux.planner.v1 import planner_pb2, planner_pb2_grpc
from tmx_config import load_fleet
from tmx_eventbus import EventBus
from tmx_grpcserver import GrpcServer, serve_until
from tmx_planner.domain.fleet_learning import DeclaredBackend, FleetLearner
from tmx_planner.events import OutcomeFeed
from tmx_planner.grpc_api import PlannerServicer
from tmx_planner.settings import Settings
from tmx_telemetry import start_metrics_server

log = logging.getLogger(__name__)

SERVICE_NAME = planner_pb2.DESCRIPTOR.services_by_name["PlannerService"].full_name


def declared_backends(fleet_file: str) -> list[DeclaredBackend]:
    if not fleet_file:
        return []
    return [DeclaredBackend(b.id, b.models[0], b.hardware, b.gpu_count, b.tp, b.engine, b.precision)
            for b in load_fleet(fleet_file).backends if b.hardware and b.models]


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    learner = FleetLearner(declared_backends(settings.fleet_file))
    server = GrpcServer([(planner_pb2_grpc.add_PlannerServiceServicer_to_server, PlannerServicer(learner),
                          SERVICE_NAME)], host=settings.host, port=settings.port)
    await server.start()
    start_metrics_server(settings.metrics_port)
    background, cleanup = {}, []
    if settings.nats_url:
        bus = await EventBus.connect(settings.nats_url, name="planner")
        await bus.provision()
        background["outcome-feed"], cleanup = OutcomeFeed(bus, learner).run(), [bus.close]
    log.info("planner serving", extra={"port": server.port, "declared_backends": len(learner.declared)})
    await serve_until(stop, server, background, cleanup)
