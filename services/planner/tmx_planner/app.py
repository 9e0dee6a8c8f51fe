"""Composition root of the planner (it has no dependencies to wait for: SERVING once bound)."""

from __future__ import annotations

import asyncio
import logging

from tensormux.planner.v1 import planner_pb2, planner_pb2_grpc
from tmx_grpcserver import GrpcServer
from tmx_planner.grpc_api import PlannerServicer
from tmx_planner.settings import Settings
from tmx_telemetry import start_metrics_server

log = logging.getLogger(__name__)

SERVICE_NAME = planner_pb2.DESCRIPTOR.services_by_name["PlannerService"].full_name


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    server = GrpcServer([(planner_pb2_grpc.add_PlannerServiceServicer_to_server, PlannerServicer(), SERVICE_NAME)],
                        host=settings.host, port=settings.port)
    await server.start()
    start_metrics_server(settings.metrics_port)
    await server.mark_serving()
    log.info("planner serving", extra={"port": server.port})
    try:
        await stop.wait()
    finally:
        await server.stop()
