import asyncio
import statistics

import grpc
import pytest

from tensormux.events.v1 import events_pb2
from tensormux.planner.v1 import planner_pb2, planner_pb2_grpc
from tmx_config import FleetFile
from tmx_config.fleet import BackendSpec, dump_fleet
from tmx_eventbus import EventBus, encode_columns, subjects
from tmx_planner.app import serve
from tmx_planner.domain.fleet_learning import DeclaredBackend, FleetLearner, Outcome
from tmx_planner.domain.performance import predict
from tmx_planner.settings import Settings

GPU1 = DeclaredBackend("gpu-1", "meta-llama/Llama-3.1-8B-Instruct", "H100", 1, 1, "vllm", "bf16")


def streamed(at_ms, ttft, tpot, prompt=1000, completion=101):
    return Outcome(at_ms, ttft + tpot * (completion - 1), ttft, prompt, completion, True)


def test_observed_workload_and_latency_against_the_prediction():
    learner = FleetLearner([GPU1])
    assert not learner.observe("undeclared", streamed(0, 100, 10))
    # 4 requests of 1.1 s each over a 2.2 s span: on average 2 in flight
    for i, ttft in enumerate((80, 100, 120, 400)):
        assert learner.observe("gpu-1", streamed(i * 366, ttft, (1100 - ttft) / 100))
    learner.observe("gpu-1", Outcome(1300, 5, 0, 10, 0, False))  # failures do not count
    (report,) = learner.report()
    assert report.requests == 4 and report.mean_prompt == 1000 and report.mean_completion == 101
    assert report.observed_ttft_p50_ms == 110  # median of 80, 100, 120, 400
    assert report.observed_tpot_ms == pytest.approx(statistics.median([(1100 - t) / 100 for t in (80, 100, 120, 400)]))
    assert report.concurrency == pytest.approx(4 * 1.1 / ((3 * 366 + 1100) / 1000))
    expected = predict(GPU1.deployment(), 1000, 101, request_rate=4 / ((3 * 366 + 1100) / 1000))
    assert report.predicted_tpot_ms == expected.tpot_ms and report.predicted_ttft_p50_ms == expected.ttft_p50_ms
    assert report.tpot_error == pytest.approx((expected.tpot_ms - report.observed_tpot_ms) / report.observed_tpot_ms)


def test_a_backend_with_only_non_streamed_requests_says_why():
    learner = FleetLearner([GPU1])
    learner.observe("gpu-1", Outcome(0, 500, 0, 100, 20, True))
    (report,) = learner.report()
    assert report.requests == 1 and report.observed_ttft_p50_ms == 0 and "no streamed" in report.note


async def test_the_planner_learns_from_outcome_events(tmp_path, nats_url, tmx_async_wait):
    from conftest import free_port

    fleet = tmp_path / "tensormux.yaml"
    dump_fleet(FleetFile(backends=(
        BackendSpec(id="gpu-1", url="http://10.0.0.1:8000", models=("meta-llama/Llama-3.1-8B-Instruct",),
                    hardware="H100"),
        BackendSpec(id="sim", url="http://127.0.0.1:1", models=("tmx-sim-llama",)),  # no hardware: not learned
    )), fleet)
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(Settings(port=port, nats_url=nats_url, fleet_file=str(fleet)), stop))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    await asyncio.wait_for(channel.channel_ready(), 10)
    stub = planner_pb2_grpc.PlannerServiceStub(channel)
    bus = await EventBus.connect(nats_url, name="test")
    await bus.provision()
    for i in range(2):  # one by one, as any producer may publish them
        await bus.publish(subjects.signal_backend("gpu-1"), events_pb2.RequestOutcome(
            backend_id="gpu-1", http_status=200, streamed=True, latency_ms=1100, ttft_ms=100, prompt_tokens=1000,
            completion_tokens=101, occurred_at_unix_ms=1_000_000 + i * 500))
        await bus.publish(subjects.signal_backend("sim"), events_pb2.RequestOutcome(backend_id="sim", http_status=200))
    # and as columns, as a gateway publishes them
    data, headers = encode_columns(events_pb2.RequestOutcome, {
        "event_id": ["c2", "c3", "c4"], "backend_id": ["gpu-1"] * 3, "http_status": [200] * 3,
        "streamed": [True] * 3, "latency_ms": [1100.0] * 3, "ttft_ms": [100.0] * 3, "prompt_tokens": [1000] * 3,
        "completion_tokens": [101] * 3, "occurred_at_unix_ms": [1_000_000 + i * 500 for i in range(2, 5)]})
    await bus.js.publish(subjects.signal_backend("gpu-1"), data, headers=headers)

    async def learned():
        reply = await stub.FleetReport(planner_pb2.FleetReportRequest())
        return reply if reply.backends and reply.backends[0].requests == 5 else None

    reply = await tmx_async_wait(learned, 10, what="outcomes consumed")
    (report,) = reply.backends
    assert report.backend_id == "gpu-1" and report.deployment == "1x H100 tp1 vllm bf16"
    assert report.observed_ttft_p50_ms == 100 and report.observed_tpot_ms == 10
    assert report.predicted_tpot_ms > 0 and report.ttft_error == pytest.approx(
        (report.predicted_ttft_p50_ms - 100) / 100)
    await bus.close()
    await channel.close()
    stop.set()
    await asyncio.wait_for(task, 10)
