"""The registry's database down mid-flow: jobs wait, nothing is lost, callers get UNAVAILABLE, nothing crashes.

Real PostgreSQL behind a TCP proxy the test cuts and restores (a partition between the registry and its
database), a real nats-server, the registry and a forge worker served in-process, a real file job."""

import asyncio
from urllib.parse import urlsplit

import grpc
import pytest

from tensormux.events.v1 import events_pb2
from tensormux.forge.v1 import forge_pb2, forge_pb2_grpc
from tmx_eventbus import EventBus, decode_all, subjects
from tmx_eventbus.streams import forge_jobs_consumer

pytestmark = pytest.mark.e2e

# honest, and slower than eager on purpose (it normalises twice): verified and timed, never promoted
SLOW_HONEST = '''import torch


def launch(x, w, eps=1e-6):
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (xf * w.float()).to(x.dtype)
'''


async def test_jobs_wait_through_a_database_outage_and_nothing_is_lost(nats_url, postgres_url, tcp_proxy,
                                                                      tmx_async_wait):
    from conftest import free_port
    from tmx_forge.app import serve as serve_worker
    from tmx_forge.settings import Settings as WorkerSettings
    from tmx_registry.app import serve as serve_registry
    from tmx_registry.settings import Settings as RegistrySettings

    url = urlsplit(postgres_url)
    proxy = await tcp_proxy(url.hostname, url.port or 5432)
    proxied = postgres_url.replace(f"@{url.hostname}:{url.port or 5432}/", f"@127.0.0.1:{proxy.port}/")
    port = free_port()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(serve_registry(RegistrySettings(
        port=port, nats_url=nats_url, database_url=f"{proxied}?connect_timeout=2", redispatch_interval_s=0.2), stop))]
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    await asyncio.wait_for(channel.channel_ready(), 30)
    forge = forge_pb2_grpc.ForgeServiceStub(channel)
    bus = await EventBus.connect(nats_url, name="test-outage")
    progress: list = []

    async def on_progress(msg):
        progress.extend(decode_all(msg.data, msg.headers))

    sub = await bus.nc.subscribe(subjects.ALL_FORGE_PROGRESS, cb=on_progress)
    await bus.nc.flush()
    try:
        job = await forge.SubmitJob(forge_pb2.SubmitJobRequest(
            op="rmsnorm", dtype="float32", target="cpu", generator="file", candidate_source=SLOW_HONEST,
            shapes=[events_pb2.Shape(dims=[64, 1024])]))
        await proxy.cut()
        # while the database is away the registry answers UNAVAILABLE, precisely, and keeps serving
        for call in (forge.GetJob(forge_pb2.GetJobRequest(id=job.id), timeout=10),
                     forge.SubmitJob(forge_pb2.SubmitJobRequest(op="rmsnorm", dtype="float32", target="cpu",
                                                                shapes=[events_pb2.Shape(dims=[8, 64])]), timeout=10)):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "database" in info.value.details()
        # a worker that takes the job now cannot read it: the job waits in the worker, in progress, not lost
        tasks.append(asyncio.create_task(serve_worker(WorkerSettings(
            nats_url=nats_url, registry_addr=f"127.0.0.1:{port}", worker_id="forge-outage", bench_repeats=3,
            compile_baseline=False, candidate_timeout_s=120), stop)))
        consumer = forge_jobs_consumer("cpu")

        async def held() -> bool:
            try:
                info = await bus.js.consumer_info(consumer.stream, consumer.durable)
            except Exception:
                return False
            return info.num_ack_pending == 1

        await tmx_async_wait(held, 60, what="the worker to hold the job")
        assert [e for e in progress if e.job_id == job.id] == []  # it cannot have started: it waits to read the job
        await proxy.restore()
        # the job starts once the database is back; cut it again while the job runs: the worker goes on (it
        # needs no database to verify) and its progress waits in JetStream for the registry
        await tmx_async_wait(lambda: _has(progress, job.id, "started"), 60, what="the job to start")
        await proxy.cut()
        await tmx_async_wait(lambda: _has(progress, job.id, "finished"), 180,
                             what="the job to finish during the outage")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await forge.GetJob(forge_pb2.GetJobRequest(id=job.id), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        await proxy.restore()

        async def concluded():
            current = await forge.GetJob(forge_pb2.GetJobRequest(id=job.id), timeout=10)
            return current if current.state == events_pb2.JOB_STATE_NOT_PROMOTED else None

        final = await tmx_async_wait(concluded, 60,
                                     what="the registry to apply the progress reported during the outage")
        finished = [e for e in progress if e.job_id == job.id and e.step == "finished"]
        assert len(finished) == 1 and final.reason == finished[0].message
        assert "is below 1.1x" in final.reason, final.reason  # it was timed: the verdict is the benchmark's
        assert [e.step for e in progress if e.job_id == job.id][0] == "started"
    finally:
        await sub.unsubscribe()
        await bus.close()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await channel.close()


def _has(progress: list, job_id: str, step: str) -> bool:
    return any(e.job_id == job_id and e.step == step for e in progress)
