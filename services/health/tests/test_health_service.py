"""The health service as it runs: real engine-sim, real NATS (stream + KV), real gRPC."""

import asyncio
import contextlib

import grpc
import pytest

from tensormux.events.v1 import events_pb2
from tensormux.health.v1 import health_pb2, health_pb2_grpc
from tmx_config import FleetFile
from tmx_config.fleet import BackendSpec, dump_fleet
from tmx_engine_sim.app import build_runner
from tmx_engine_sim.faults import Faults
from tmx_engine_sim.http_api import SimApi
from tmx_engine_sim.settings import Settings as SimSettings
from tmx_eventbus import EventBus, decode, encode_columns, subjects
from tmx_health.app import serve
from tmx_health.settings import Settings


@pytest.fixture
async def bus(nats_url):
    bus = await EventBus.connect(nats_url, name="test")
    await bus.provision()
    yield bus
    await bus.close()


async def collect(bus: EventBus, subject: str) -> list:
    """Every event published on `subject` from now on, decoded, in arrival order."""
    received: list = []

    async def on_msg(msg):
        received.append(decode(msg.data, msg.headers))

    await bus.nc.subscribe(subject, cb=on_msg)
    return received


@contextlib.asynccontextmanager
async def running_health(tmp_path, nats_url, backends, **overrides):
    from conftest import free_port

    path = tmp_path / "tensormux.yaml"
    dump_fleet(FleetFile(backends=tuple(BackendSpec(id=i, url=u, models=("m",)) for i, u in backends)), path)
    port = free_port()
    settings = Settings(**{"port": port, "nats_url": nats_url, "fleet_file": str(path), "probe_interval_s": 0.05,
                           "probe_timeout_s": 0.5, "fall_threshold": 2, "rise_threshold": 2, **overrides})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthServiceStub(channel)
    try:
        for _ in range(200):
            try:
                await stub.ListBackends(health_pb2.ListBackendsRequest(), timeout=0.5)
                break
            except grpc.aio.AioRpcError:
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
        yield stub
    finally:
        await channel.close()
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_probes_publish_transitions_and_keep_state_in_kv(asgi_server, tmp_path, nats_url, bus, tmx_async_wait):
    from conftest import free_port

    settings = SimSettings(models="m", time_scale=0.01)
    runner = build_runner(settings)
    dead_url = f"http://127.0.0.1:{free_port()}"
    events = await collect(bus, subjects.ALL_HEALTH)
    async with asgi_server(SimApi(settings, runner, Faults(), lambda: None).app(), lifespan="off") as (url, server):
        async with running_health(tmp_path, nats_url, [("live", url), ("dead", dead_url)]) as stub:
            await tmx_async_wait(lambda: {(e.backend_id, e.current) for e in events} >= {
                ("live", events_pb2.BACKEND_STATE_HEALTHY), ("dead", events_pb2.BACKEND_STATE_UNHEALTHY)}, 10,
                what="both transitions")
            reply = await stub.ListBackends(health_pb2.ListBackendsRequest())
            states = {b.id: b.state for b in reply.backends}
            assert states == {"live": events_pb2.BACKEND_STATE_HEALTHY, "dead": events_pb2.BACKEND_STATE_UNHEALTHY}
            dead = await stub.GetBackend(health_pb2.GetBackendRequest(id="dead"))
            assert dead.last_error == "ClientConnectorError" and dead.consecutive_failures >= 2
            models = await stub.ListModels(health_pb2.ListModelsRequest())
            assert [(m.id, m.healthy_backends) for m in models.models] == [("m", 1)]
            kv = await bus.backends_kv()
            saved = events_pb2.BackendStateChanged.FromString((await kv.get("dead")).value)
            assert saved.current == events_pb2.BACKEND_STATE_UNHEALTHY
            # the engine goes away: its stop is noticed and published
            server.should_exit = True
            await tmx_async_wait(lambda: any(e.backend_id == "live" and e.current == events_pb2.BACKEND_STATE_UNHEALTHY
                                             for e in events), 10, what="live -> unhealthy")


async def test_a_restarted_service_resumes_from_kv(tmp_path, nats_url, bus):
    from conftest import free_port

    dead_url = f"http://127.0.0.1:{free_port()}"
    kv = await bus.backends_kv()
    await kv.put("dead", events_pb2.BackendStateChanged(
        backend_id="dead", url=dead_url, current=events_pb2.BACKEND_STATE_UNHEALTHY, consecutive_failures=9,
    ).SerializeToString())
    async with running_health(tmp_path, nats_url, [("dead", dead_url)]) as stub:
        backend = await stub.GetBackend(health_pb2.GetBackendRequest(id="dead"))
        assert backend.state == events_pb2.BACKEND_STATE_UNHEALTHY  # not UNKNOWN: it resumed


async def test_registration_and_errors(tmp_path, nats_url):
    async with running_health(tmp_path, nats_url, []) as stub:
        watch = stub.WatchBackends(health_pb2.WatchBackendsRequest())
        backend = await stub.RegisterBackend(health_pb2.RegisterBackendRequest(id="new", url="http://127.0.0.1:9",
                                                                               models=["m"]))
        assert backend.state == events_pb2.BACKEND_STATE_UNKNOWN
        first = await asyncio.wait_for(watch.read(), 5)
        # via the snapshot or as a live event, depending on which the stream saw first
        assert first.backend_id == "new" and first.current == events_pb2.BACKEND_STATE_UNKNOWN
        watch.cancel()
        for bad, field in [({"id": "x", "url": "nope"}, "url"), ({"id": "x", "url": "http://127.0.0.1:99999"}, "url"),
                           ({"id": "x", "url": "http://127.0.0.1:0"}, "url"), ({"id": "x.y", "url": "http://h"}, "id"),
                           ({"id": "x", "url": "http://h", "models": ["m", " "]}, "models")]:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.RegisterBackend(health_pb2.RegisterBackendRequest(**bad))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details().startswith(f"{field}:"), info.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetBackend(health_pb2.GetBackendRequest(id="ghost"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        await stub.DeregisterBackend(health_pb2.DeregisterBackendRequest(id="new"))
        assert not (await stub.ListBackends(health_pb2.ListBackendsRequest())).backends


async def test_passive_signals_model_discovery_and_draining(asgi_server, tmp_path, nats_url, bus, tmx_async_wait):
    settings = SimSettings(models="m", time_scale=0.01, max_model_len=512)
    runner = build_runner(settings)
    events = await collect(bus, subjects.ALL_HEALTH)

    def states():
        return [e.current for e in events]

    async with asgi_server(SimApi(settings, runner, Faults(), lambda: None).app(), lifespan="off") as (url, _):
        async with running_health(tmp_path, nats_url, [("live", url)]) as stub:
            await tmx_async_wait(lambda: events_pb2.BACKEND_STATE_HEALTHY in states(), 10, what="healthy")
            await tmx_async_wait(lambda: any(e.context_length == 512 for e in events), 10, what="model discovery")
            backend = await stub.GetBackend(health_pb2.GetBackendRequest(id="live"))
            assert list(backend.models) == ["m"] and backend.context_length == 512
            # gateways report failed requests: passive signals take it down before any probe fails. A gateway
            # sends its outcomes as columns; a client error says nothing about health, nor does an unknown backend,
            # nor a 500 to a request every backend failed (a query of death: the gateway marks it at fault)
            data, headers = encode_columns(events_pb2.RequestOutcome, {
                "event_id": ["o1", "o2", "o3", "o4", "o5"], "backend_id": ["live", "live", "ghost", "live", "live"],
                "http_status": [500, 404, 500, 500, 500], "error": ["HTTP 500", "", "", "HTTP 500", "HTTP 500"],
                "request_at_fault": [False, False, False, True, True]})
            await bus.js.publish(subjects.signal_backend("live"), data, headers=headers)
            await bus.publish(subjects.signal_backend("live"), events_pb2.RequestOutcome(
                backend_id="live", http_status=500, error="HTTP 500"))
            down = await tmx_async_wait(lambda: next((e for e in events if e.current ==
                                                      events_pb2.BACKEND_STATE_UNHEALTHY), None), 10, what="down")
            assert "failed requests" in down.reason
            assert (await stub.GetBackend(health_pb2.GetBackendRequest(id="live"))).passive_failures == 2
            # probes still pass, so it recovers: unhealthy -> recovering -> healthy
            await tmx_async_wait(lambda: states()[-2:] == [events_pb2.BACKEND_STATE_RECOVERING,
                                                           events_pb2.BACKEND_STATE_HEALTHY], 10, what="recovery")
            drained = await stub.DrainBackend(health_pb2.DrainBackendRequest(id="live", drain=True))
            assert drained.state == events_pb2.BACKEND_STATE_DRAINING
            count = len(events)
            probed = set()

            async def probed_three_more_times():
                b = await stub.GetBackend(health_pb2.GetBackendRequest(id="live"))
                probed.add(b.last_probe_unix_ms)
                return len(probed) >= 4 and b

            still = await tmx_async_wait(probed_three_more_times, 10, what="probes while drained")
            assert still.state == events_pb2.BACKEND_STATE_DRAINING and len(events) == count
            await stub.DrainBackend(health_pb2.DrainBackendRequest(id="live", drain=False))
            await tmx_async_wait(lambda: states()[-1] == events_pb2.BACKEND_STATE_HEALTHY, 10, what="undrained")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.DrainBackend(health_pb2.DrainBackendRequest(id="ghost", drain=True))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_failed_request_makes_the_prober_confirm_a_death_at_once(asgi_server, tmp_path, nats_url, bus,
                                                                           tmx_async_wait):
    settings = SimSettings(models="m", time_scale=0.01)
    runner = build_runner(settings)
    events = await collect(bus, subjects.ALL_HEALTH)
    async with contextlib.AsyncExitStack() as sim:
        url, _ = await sim.enter_async_context(asgi_server(SimApi(settings, runner, Faults(), lambda: None).app(),
                                                           lifespan="off"))
        # probes every 60 s: without the wake-up the death would go unseen for a minute
        async with running_health(tmp_path, nats_url, [("e1", url)], probe_interval_s=60.0,
                                  suspect_probe_interval_s=0.05) as stub:
            await tmx_async_wait(lambda: any(e.current == events_pb2.BACKEND_STATE_HEALTHY for e in events), 10,
                                 what="healthy")
            await sim.aclose()  # the engine dies; no scheduled probe comes for a minute
            await bus.publish(subjects.signal_backend("e1"), events_pb2.RequestOutcome(
                backend_id="e1", http_status=0, error="ClientConnectorError"))  # one gateway's refused connection
            down = await tmx_async_wait(lambda: next((e for e in events if e.current ==
                                                      events_pb2.BACKEND_STATE_UNHEALTHY), None), 10, what="down")
            assert "failed probes" in down.reason  # one failed request, then probes confirmed it at once
            backend = await stub.GetBackend(health_pb2.GetBackendRequest(id="e1"))
            assert backend.state == events_pb2.BACKEND_STATE_UNHEALTHY


async def test_engine_metrics_become_load_snapshots(asgi_server, tmp_path, nats_url, bus, tmx_async_wait):
    import aiohttp

    settings = SimSettings(models="m", time_scale=0.01)
    runner = build_runner(settings)
    loads = await collect(bus, subjects.ALL_LOAD)
    runner.start()
    async with asgi_server(SimApi(settings, runner, Faults(), lambda: None).app(), lifespan="off") as (url, _):
        async with running_health(tmp_path, nats_url, [("live", url)]):
            await tmx_async_wait(lambda: loads, 10, what="first load snapshot")
            assert loads[0].backend_id == "live" and loads[0].engine == "vllm"
            prompt = {"model": "m", "messages": [{"role": "user", "content": "word " * 64}], "max_tokens": 2}
            async with aiohttp.ClientSession() as http:
                for _ in range(2):  # the second is served from the prefix cache
                    async with http.post(f"{url}/v1/chat/completions", json=prompt) as resp:
                        await resp.read()
            await tmx_async_wait(lambda: any(0 < s.prefix_cache_hit_rate < 1 for s in loads), 10,
                                 what="hit rate reported")
    await runner.stop()
