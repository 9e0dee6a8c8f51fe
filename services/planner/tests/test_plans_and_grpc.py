import asyncio

import grpc
import pytest

from tensormux.planner.v1 import planner_pb2, planner_pb2_grpc
from tmx_planner.app import serve
from tmx_planner.domain.plans import PlanQuery, Sla, plan
from tmx_planner.settings import Settings


def test_plans_are_feasible_ranked_and_respect_sla_and_budget():
    q = PlanQuery("Llama-3.1-70B-Instruct", 1024, 256, concurrency=64, sla=Sla(ttft_p95_ms=500, tpot_ms=40),
                  budget_per_hour=20.0, limit=50)
    result = plan(q)
    assert result.plans and result.considered > len(result.plans)
    for p in result.plans:
        assert p.prediction.memory.fits
        assert p.prediction.ttft_p95_ms <= 500 and p.prediction.tpot_ms <= 40
        assert p.cost_per_hour <= 20.0
        assert p.cost_per_hour == pytest.approx(p.deployment.gpu.price_per_hour * p.deployment.gpu_count)
    scores = [p.score for p in result.plans]
    assert scores == sorted(scores, reverse=True)
    assert not any(p.deployment.gpu.name == "L4" and p.deployment.gpu_count == 1 for p in result.plans)


def test_an_impossible_budget_leaves_no_plan():
    assert plan(PlanQuery("Llama-3.1-70B", 1024, 256, concurrency=8, budget_per_hour=0.5)).plans == []


@pytest.fixture
async def planner():
    from conftest import free_port

    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(Settings(port=port), stop))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    await asyncio.wait_for(channel.channel_ready(), 10)
    yield planner_pb2_grpc.PlannerServiceStub(channel)
    await channel.close()
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_plan_rpc_returns_ranked_plans_with_explanations(planner):
    reply = await planner.Plan(planner_pb2.PlanRequest(
        model="Qwen2.5-7B-Instruct", workload=planner_pb2.Workload(isl=512, osl=128, concurrency=32), limit=5))
    assert reply.resolved_model == "Qwen2.5-7B" and len(reply.plans) == 5
    assert all(p.prediction.fits and p.explanation and p.cost_per_million_output_tokens > 0 for p in reply.plans)
    assert [p.score for p in reply.plans] == sorted((p.score for p in reply.plans), reverse=True)


async def test_plan_rpc_rejects_bad_input_precisely(planner):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await planner.Plan(planner_pb2.PlanRequest(model="nope", workload=planner_pb2.Workload(isl=1, osl=1)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and info.value.details().startswith("model:")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await planner.Plan(planner_pb2.PlanRequest(model="Mistral-7B", workload=planner_pb2.Workload(isl=0, osl=1)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_estimate_answers_every_line_and_never_fails_the_call(planner):
    good = planner_pb2.EstimateInput(model="Llama-3.1-8B-Instruct", gpu="H100", gpu_count=4, tp=1, engine="vllm",
                                     precision="bf16", isl=1024, osl=256, concurrency=128)
    offline = planner_pb2.EstimateInput(model="Llama-3.1-8B", gpu="H100", gpu_count=1, tp=1, engine="trtllm",
                                        precision="fp8", isl=1000, osl=1000)
    bad = planner_pb2.EstimateInput(model="Llama-3.1-8B", gpu="TPUv9", isl=1, osl=1)
    reply = await planner.Estimate(planner_pb2.EstimateRequest(inputs=[good, bad, offline]))
    first, second, third = reply.outputs
    assert first.fits and first.output_tok_s_total > 0 and first.ttft_p95_ms > first.ttft_p50_ms > 0 and not first.error
    assert second.error.startswith("gpu:")
    assert third.output_tok_s_total > 0 and not third.error


async def test_catalogue_rpcs(planner):
    gpus = (await planner.ListHardware(planner_pb2.ListHardwareRequest())).gpus
    models = (await planner.ListModels(planner_pb2.ListModelsRequest())).models
    assert {"H100", "H200", "A100-80GB", "L40S", "L4"} <= {g.name for g in gpus}
    assert {"Llama-3.1-8B", "Llama-3.1-70B"} <= {m.name for m in models}
