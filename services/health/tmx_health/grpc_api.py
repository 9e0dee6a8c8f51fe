"""HealthService: proto <-> domain, nothing else."""

from __future__ import annotations

from tensormux.health.v1 import health_pb2, health_pb2_grpc
from tmx_grpcserver import grpc_errors
from tmx_health.domain.state_machine import BackendHealth, State
from tmx_health.events import TO_PROTO
from tmx_health.monitor import Monitor


def _backend(b: BackendHealth) -> health_pb2.Backend:
    return health_pb2.Backend(
        id=b.id, url=b.url, models=list(b.models), state=TO_PROTO[b.state],
        consecutive_failures=b.consecutive_failures, consecutive_successes=b.consecutive_successes,
        last_error=b.last_error, last_probe_unix_ms=b.last_probe_ms, last_probe_latency_ms=b.last_latency_ms,
        context_length=b.context_length, passive_failures=b.passive_failures,
    )


class HealthServicer(health_pb2_grpc.HealthServiceServicer):
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.directory = monitor.directory

    @grpc_errors
    async def ListBackends(self, request, context):
        return health_pb2.ListBackendsResponse(backends=[_backend(b) for b in self.directory.backends.values()])

    @grpc_errors
    async def GetBackend(self, request, context):
        return _backend(self.directory.get(request.id))

    @grpc_errors
    async def RegisterBackend(self, request, context):
        known = request.id in self.directory.backends
        backend = self.directory.register(request.id, request.url, tuple(request.models))
        if not known:
            await self.monitor.announce(backend, State.UNKNOWN, "registered")
        return _backend(backend)

    @grpc_errors
    async def DeregisterBackend(self, request, context):
        backend = self.directory.remove(request.id)
        previous, backend.state = backend.state, State.DRAINING
        await self.monitor.announce(backend, previous, "deregistered")
        await self.monitor.publisher.forget(backend.id)
        return health_pb2.DeregisterBackendResponse()

    @grpc_errors
    async def WatchBackends(self, request, context):
        queue = self.monitor.watch()
        try:
            for event in self.monitor.snapshot():
                yield event
            while True:
                yield await queue.get()
        finally:
            self.monitor.unwatch(queue)

    @grpc_errors
    async def ListModels(self, request, context):
        return health_pb2.ListModelsResponse(models=[
            health_pb2.ModelEntry(id=m.name, backend_ids=list(m.backend_ids), healthy_backends=m.healthy,
                                  context_length=m.context_length, aliases=list(m.aliases))
            for m in self.directory.models()
        ])

    @grpc_errors
    async def DrainBackend(self, request, context):
        return _backend(await self.monitor.drain(request.id, request.drain))
