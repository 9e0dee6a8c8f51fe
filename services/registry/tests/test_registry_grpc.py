"""RegistryService and ForgeService served for real: gRPC + NATS + a database."""

import asyncio
import json

import grpc
import pytest

from tensormux.events.v1 import events_pb2
from tensormux.forge.v1 import forge_pb2, forge_pb2_grpc
from tensormux.registry.v1 import registry_pb2, registry_pb2_grpc
from tmx_eventbus import EventBus, decode, subjects
from tmx_eventbus.streams import forge_jobs_consumer
from tmx_registry.app import serve
from tmx_registry.settings import Settings


@pytest.fixture
async def registry(nats_url, database_url):
    from conftest import free_port

    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(Settings(port=port, nats_url=nats_url, database_url=database_url,
                                              redispatch_interval_s=0.1), stop))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    await asyncio.wait_for(channel.channel_ready(), 20)
    bus = await EventBus.connect(nats_url, name="test")
    yield forge_pb2_grpc.ForgeServiceStub(channel), registry_pb2_grpc.RegistryServiceStub(channel), bus
    await bus.close()
    await channel.close()
    stop.set()
    await asyncio.wait_for(task, 15)


def submit_request(**kw):
    return forge_pb2.SubmitJobRequest(**{"op": "rmsnorm", "dtype": "float32", "target": "cpu",
                                         "shapes": [events_pb2.Shape(dims=[8, 64])], **kw})


async def test_submit_stores_and_queues_the_job_for_its_target(registry):
    forge, _, bus = registry
    job = await forge.SubmitJob(submit_request())
    assert job.state == events_pb2.JOB_STATE_QUEUED and job.max_candidates == 4
    psub = await bus.js.pull_subscribe(subjects.forge_job("cpu"), durable="forge-worker-cpu",
                                       stream="TMX_FORGE_JOBS")
    msgs = await psub.fetch(1, timeout=5)
    event = decode(msgs[0].data, msgs[0].headers)
    assert isinstance(event, events_pb2.KernelJob) and event.job_id == job.id and list(event.shapes[0].dims) == [8, 64]
    await msgs[0].ack()
    await psub.unsubscribe()


async def test_progress_events_drive_the_job_and_watch_streams_them(registry, tmx_async_wait):
    forge, _, bus = registry
    job = await forge.SubmitJob(submit_request())
    states = []
    watching = asyncio.Event()

    async def watch():
        async for update in forge.WatchJob(forge_pb2.WatchJobRequest(id=job.id)):
            states.append(update.state)
            watching.set()

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(watching.wait(), 10)  # the stream opens with the job as stored
    for state in (events_pb2.JOB_STATE_RUNNING, events_pb2.JOB_STATE_NOT_PROMOTED, events_pb2.JOB_STATE_RUNNING):
        await bus.publish(subjects.forge_progress(job.id), events_pb2.JobProgress(job_id=job.id, state=state,
                                                                                  message="because"))
    await asyncio.wait_for(watcher, 10)  # the stream ends by itself at the terminal state
    assert states[0] == events_pb2.JOB_STATE_QUEUED and states[-1] == events_pb2.JOB_STATE_NOT_PROMOTED
    final = await forge.GetJob(forge_pb2.GetJobRequest(id=job.id))
    assert final.state == events_pb2.JOB_STATE_NOT_PROMOTED and final.reason == "because"


async def test_cancel_and_errors(registry):
    forge, _, _ = registry
    job = await forge.SubmitJob(submit_request())
    cancelled = await forge.CancelJob(forge_pb2.CancelJobRequest(id=job.id))
    assert cancelled.state == events_pb2.JOB_STATE_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await forge.CancelJob(forge_pb2.CancelJobRequest(id=job.id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await forge.SubmitJob(submit_request(shapes=[events_pb2.Shape(dims=[0])]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and info.value.details().startswith("shapes:")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await forge.GetJob(forge_pb2.GetJobRequest(id="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert len((await forge.ListJobs(forge_pb2.ListJobsRequest())).jobs) == 1


async def test_publish_resolve_and_kernel_promoted_event(registry):
    _, reg, bus = registry
    received = []

    async def on_msg(msg):
        received.append(decode(msg.data, msg.headers))

    sub = await bus.nc.subscribe(subjects.ALL_REGISTRY, cb=on_msg)
    request = registry_pb2.PublishKernelRequest(op="rmsnorm", dtype="float32", hardware="cpu", source="def k(): ...",
                                                config_json="{}", speedup=1.4, evidence_json=json.dumps({"x": 1}))
    kernel = await reg.PublishKernel(request)
    again = await reg.PublishKernel(request)
    assert again.id == kernel.id
    resolved = await reg.ResolveKernel(registry_pb2.ResolveKernelRequest(op="rmsnorm", dtype="float32", hardware="cpu"))
    assert resolved.id == kernel.id and resolved.content_hash == kernel.content_hash
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await reg.ResolveKernel(registry_pb2.ResolveKernelRequest(op="rmsnorm", dtype="float16", hardware="cpu"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await reg.PublishKernel(registry_pb2.PublishKernelRequest(op="rmsnorm", dtype="float32", hardware="cpu",
                                                                  source="x", speedup=1.0, evidence_json="{}"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.02)
    assert [(e.kernel_id, e.op) for e in received] == [(kernel.id, "rmsnorm")]  # announced once
    await sub.unsubscribe()


async def test_jobs_submitted_while_nats_is_down_are_dispatched_later(nats_server, database_url, tmx_async_wait):
    from conftest import free_port

    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(Settings(port=port, nats_url=nats_server.url, database_url=database_url,
                                              redispatch_interval_s=0.1), stop))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    await asyncio.wait_for(channel.channel_ready(), 20)
    forge = forge_pb2_grpc.ForgeServiceStub(channel)
    nats_server.stop()
    job = await forge.SubmitJob(submit_request(), timeout=15)  # stored, dispatch deferred
    nats_server.start()
    bus = await EventBus.connect(nats_server.url, name="test")
    decl = forge_jobs_consumer("cpu")
    psub = await bus.js.pull_subscribe(decl.filter_subject, durable=decl.durable, stream=decl.stream)

    async def fetched():
        try:
            return await psub.fetch(1, timeout=0.5)
        except Exception:
            return None

    msgs = await tmx_async_wait(fetched, 20, what="re-dispatched job")
    assert decode(msgs[0].data, msgs[0].headers).job_id == job.id
    await psub.unsubscribe()
    await bus.close()
    await channel.close()
    stop.set()
    await asyncio.wait_for(task, 15)


async def test_provenance_runs_decisions_and_revocation_over_grpc(registry):
    _, reg, _ = registry

    def request(source, speedup, runs=()):
        return registry_pb2.PublishKernelRequest(
            op="rmsnorm", dtype="float32", hardware="cuda-sm90", source=source, config_json="{}", speedup=speedup,
            evidence_json=json.dumps({"x": 1}), job_id="job1",
            provenance=registry_pb2.Provenance(generator="template", worker_id="forge-gpu-1", toolchain_json="{}"),
            environment=registry_pb2.Environment(device="NVIDIA H100", capability="sm90", torch="2.13.0"),
            runs=list(runs), op_spec=registry_pb2.OpSpec(name="rmsnorm", reference_source="def reference(x): ..."))

    first = await reg.PublishKernel(request("a", 1.4, [registry_pb2.Run(kind="benchmark", shape=[8, 64], passed=True,
                                                                         speedup=1.4, baseline="eager")]))
    assert first.status == "promoted" and first.provenance.worker_id == "forge-gpu-1"
    assert first.environment.capability == "sm90" and first.op_reference_hash.startswith("sha256:")
    second = await reg.PublishKernel(request("b", 1.6))
    runs = (await reg.ListRuns(registry_pb2.ListRunsRequest(kernel_id=first.id))).runs
    assert [(r.kind, list(r.shape), r.speedup, r.job_id) for r in runs] == [("benchmark", [8, 64], 1.4, "job1")]
    spec = await reg.GetOpSpec(registry_pb2.GetOpSpecRequest(name="rmsnorm"))
    assert spec.reference_hash == first.op_reference_hash and spec.reference_source == "def reference(x): ..."
    # an sm100 device is served by the sm90 default; at the measured shape the kernel measured there wins
    resolve = registry_pb2.ResolveKernelRequest(op="rmsnorm", dtype="float32", hardware="cuda-sm100")
    assert (await reg.ResolveKernel(resolve)).id == second.id
    resolve.shape.extend([8, 64])
    assert (await reg.ResolveKernel(resolve)).id == first.id
    revoked = await reg.RevokeKernel(registry_pb2.RevokeKernelRequest(id=first.id, reason="bad bf16", actor="ops"))
    assert revoked.status == "revoked"
    assert (await reg.ResolveKernel(resolve)).id == second.id
    log = (await reg.ListDecisions(registry_pb2.ListDecisionsRequest(op="rmsnorm"))).decisions
    assert [(d.kernel_id, d.decision) for d in log][:2] == [(first.id, "revoked"), (second.id, "promoted")]
    for call, bad, code in (
            (reg.RevokeKernel, registry_pb2.RevokeKernelRequest(id=first.id, reason="again"),
             grpc.StatusCode.FAILED_PRECONDITION),
            (reg.RevokeKernel, registry_pb2.RevokeKernelRequest(id=second.id), grpc.StatusCode.INVALID_ARGUMENT),
            (reg.ListRuns, registry_pb2.ListRunsRequest(kernel_id="nope"), grpc.StatusCode.NOT_FOUND),
            (reg.GetOpSpec, registry_pb2.GetOpSpecRequest(name="softmax"), grpc.StatusCode.NOT_FOUND),
            (reg.GetOpSpec, registry_pb2.GetOpSpecRequest(), grpc.StatusCode.INVALID_ARGUMENT),
            (reg.GetKernel, registry_pb2.GetKernelRequest(), grpc.StatusCode.INVALID_ARGUMENT),
            (reg.ListRuns, registry_pb2.ListRunsRequest(), grpc.StatusCode.INVALID_ARGUMENT),
            (reg.RevokeKernel, registry_pb2.RevokeKernelRequest(reason="why"), grpc.StatusCode.INVALID_ARGUMENT),
            (reg.ResolveKernel, registry_pb2.ResolveKernelRequest(op="rmsnorm", dtype="float32"),
             grpc.StatusCode.INVALID_ARGUMENT),
            (reg.PublishKernel, request("c", 1.5, [registry_pb2.Run(kind="vibes", shape=[1])]),
             grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(bad)
        assert info.value.code() == code


async def test_a_file_job_carries_its_candidate_to_the_workers(registry):
    forge, _, bus = registry
    source = "def launch(x, w, eps=1e-6):\n    return x * w\n"
    job = await forge.SubmitJob(submit_request(generator="file", candidate_source=source))
    assert job.generator == "file" and job.candidate_source == source
    psub = await bus.js.pull_subscribe(subjects.forge_job("cpu"), durable="forge-worker-cpu", stream="TMX_FORGE_JOBS")
    msgs = await psub.fetch(1, timeout=5)
    assert decode(msgs[0].data, msgs[0].headers).candidate_source == source
    await msgs[0].ack()
    await psub.unsubscribe()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await forge.SubmitJob(submit_request(generator="file", candidate_source="def launch(:"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "candidate_source" in info.value.details()


async def test_jobs_are_checked_against_the_forge_workers_alive(registry):
    """What the workers of a target announce in the workers bucket: ListWorkers lists it, and SubmitJob refuses
    an op none of them has (it was queued, then failed by a worker as "unknown op") or a generator none runs."""
    forge, _, bus = registry
    kv = await bus.forge_workers_kv()
    worker = events_pb2.ForgeWorker(worker_id="w1", target="cpu", ops=["rmsnorm", "softmax"],
                                    generators=["template", "file"], torch="2.13.0")
    await kv.put(subjects.forge_worker_key("cpu", "w1"), worker.SerializeToString())
    listed = await forge.ListWorkers(forge_pb2.ListWorkersRequest())
    of_gpus = await forge.ListWorkers(forge_pb2.ListWorkersRequest(target="cuda-sm90"))
    with pytest.raises(grpc.aio.AioRpcError) as typo:
        await forge.SubmitJob(submit_request(op="rmsnrom"))
    with pytest.raises(grpc.aio.AioRpcError) as agent:
        await forge.SubmitJob(submit_request(generator="agent"))
    accepted = await forge.SubmitJob(submit_request(op="softmax"))
    waits = await forge.SubmitJob(submit_request(op="attention", target="cuda-sm90"))  # no such worker yet
    await kv.delete(subjects.forge_worker_key("cpu", "w1"))  # the worker stopped: nothing to check against
    unchecked = await forge.SubmitJob(submit_request(op="rmsnrom"))
    assert list(listed.workers) == [worker] and list(of_gpus.workers) == []
    assert typo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert typo.value.details() == ("op: unknown op 'rmsnrom'; the cpu workers have rmsnorm, softmax "
                                    "(or send reference_source for a custom op)")
    assert agent.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "'agent' generator" in agent.value.details()
    assert [j.state for j in (accepted, waits, unchecked)] == [events_pb2.JOB_STATE_QUEUED] * 3
    jobs = await forge.ListJobs(forge_pb2.ListJobsRequest())
    assert sorted(j.op for j in jobs.jobs) == ["attention", "rmsnrom", "softmax"]  # none of the refused was stored
