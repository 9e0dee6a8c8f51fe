import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tensormux.events.v1 import events_pb2
from tensormux.health.v1 import health_pb2 as tmx_health_pb2
from tensormux.health.v1 import health_pb2_grpc as tmx_health_grpc
from tmx_errors import InvalidArgument, NotFound, Unavailable
from tmx_grpcserver import GrpcServer, grpc_errors

SERVICE = "tensormux.health.v1.HealthService"


class Servicer(tmx_health_grpc.HealthServiceServicer):
    @grpc_errors
    async def GetBackend(self, request, context):
        if request.id == "bad":
            raise InvalidArgument("id", "must not be bad")
        if request.id == "db":
            raise Unavailable("database unavailable")
        if request.id == "boom":
            raise ZeroDivisionError("secret internals")
        raise NotFound(f"backend {request.id} not found")

    @grpc_errors
    async def WatchBackends(self, request, context):
        yield events_pb2.BackendStateChanged(backend_id="a")
        raise NotFound("stream ended with a named error")


@pytest.fixture
async def server():
    server = GrpcServer([(tmx_health_grpc.add_HealthServiceServicer_to_server, Servicer(), SERVICE)])
    await server.start()
    yield server
    await server.stop(0)


async def test_health_is_not_serving_until_marked(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await server.mark_serving()
        for name in ("", SERVICE):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await server.mark_not_serving()
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_the_services(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        async for response in responses:
            names = {s.name for s in response.list_services_response.service}
            break
    assert {SERVICE, "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize("backend_id, code, detail", [
    ("bad", grpc.StatusCode.INVALID_ARGUMENT, "id: must not be bad"),
    ("missing", grpc.StatusCode.NOT_FOUND, "backend missing not found"),
    ("db", grpc.StatusCode.UNAVAILABLE, "database unavailable"),
    ("boom", grpc.StatusCode.INTERNAL, "internal error"),
])
async def test_domain_errors_map_to_precise_statuses(server, backend_id, code, detail):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = tmx_health_grpc.HealthServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetBackend(tmx_health_pb2.GetBackendRequest(id=backend_id))
    assert info.value.code() == code
    assert info.value.details() == detail
    assert "secret" not in info.value.details()


async def test_stream_errors_are_mapped_too(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = tmx_health_grpc.HealthServiceStub(channel)
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for event in stub.WatchBackends(tmx_health_pb2.WatchBackendsRequest()):
                received.append(event.backend_id)
    assert received == ["a"]
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
