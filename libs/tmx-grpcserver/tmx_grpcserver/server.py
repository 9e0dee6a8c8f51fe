from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)

Registration = tuple[Callable[[object, grpc.aio.Server], None], object, str]


class GrpcServer:
    """An aio gRPC server with grpc.health.v1 and reflection.

    Health starts NOT_SERVING for every service and turns SERVING only when the composition root calls
    `mark_serving()` after its dependencies are connected; `mark_not_serving()` when one is lost.
    """

    def __init__(self, registrations: Iterable[Registration], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._registrations = list(registrations)
        self._address = f"{host}:{port}"
        self.server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self.health = health.aio.HealthServicer()
        self.port = 0

    @property
    def service_names(self) -> list[str]:
        return [name for _, _, name in self._registrations]

    async def start(self) -> int:
        for add, servicer, _name in self._registrations:
            add(servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        await self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = self.server.add_insecure_port(self._address)
        if self.port == 0:
            raise RuntimeError(f"could not bind gRPC port {self._address}")
        await self.server.start()
        log.info("gRPC listening", extra={"address": self._address, "port": self.port})
        return self.port

    async def mark_serving(self) -> None:
        await self._set_all(health_pb2.HealthCheckResponse.SERVING)

    async def mark_not_serving(self) -> None:
        await self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)

    async def _set_all(self, status) -> None:
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
