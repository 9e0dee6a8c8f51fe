import asyncio
import json
from dataclasses import replace

import grpc
import pytest

from tmx_errors import InvalidArgument

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


def test_a_plan_says_why_candidates_were_dropped_and_how_close_the_best_came():
    """With no plan left, the best TTFT p95 among what fits is the bar: asking for just above it leaves a plan
    whose TTFT p95 is exactly that; just below, none. Every dropped candidate is counted under one reason."""
    q = PlanQuery("Llama-3.1-70B", 1024, 256, concurrency=64, sla=Sla(ttft_p95_ms=1.0), limit=1000)
    none = plan(q)
    assert none.plans == [] and none.dropped == none.considered == sum(none.dropped_by_reason.values())
    assert set(none.dropped_by_reason) == {"misses TTFT p95", "does not fit in VRAM"}
    bar = none.best_fitting["ttft_p95_ms"]
    assert bar > 1.0 and set(none.best_fitting) == {"ttft_p95_ms", "tpot_ms", "output_tok_s", "cost_per_hour"}
    met = plan(replace(q, sla=Sla(ttft_p95_ms=bar)))
    assert [p.prediction.ttft_p95_ms for p in met.plans] == [bar] * len(met.plans) and met.plans
    assert met.dropped == sum(met.dropped_by_reason.values()) == met.considered - len(met.plans)
    assert plan(replace(q, sla=Sla(ttft_p95_ms=bar * (1 - 1e-9)))).plans == []
    every = plan(replace(q, sla=Sla()))  # without the constraint, the same bars, met by some plan each
    assert min(p.prediction.ttft_p95_ms for p in every.plans) == bar
    assert max(p.prediction.output_tok_s_total for p in every.plans) == none.best_fitting["output_tok_s"]
    broke = plan(PlanQuery("Llama-3.1-70B", 1024, 256, concurrency=8, budget_per_hour=0.5))
    assert broke.plans == [] and broke.dropped_by_reason["over budget"] > 0
    assert broke.best_fitting["cost_per_hour"] > 0.5


@pytest.mark.parametrize("sla, budget, field", [(Sla(ttft_p95_ms=0), None, "sla.ttft_p95_ms"),
                                                (Sla(tpot_ms=float("nan")), None, "sla.tpot_ms"),
                                                (Sla(min_output_tok_s=-1), None, "sla.min_output_tok_s"),
                                                (Sla(), 0.0, "budget_per_hour")])
def test_a_constraint_that_is_not_a_positive_number_is_refused(sla, budget, field):
    with pytest.raises(InvalidArgument) as info:
        plan(PlanQuery("Llama-3.1-8B", concurrency=8, sla=sla, budget_per_hour=budget))
    assert info.value.field == field


def test_profiles_and_user_weights_change_the_ranking():
    chat = plan(PlanQuery("Llama-3.1-8B", concurrency=32, limit=200))
    batch = plan(PlanQuery("Llama-3.1-8B", concurrency=32, limit=200, profile="batch"))
    assert (chat.profile, batch.profile) == ("chat", "batch") and batch.weights["latency"] == 0
    assert chat.plans[0].deployment != batch.plans[0].deployment
    cheapest = plan(PlanQuery("Llama-3.1-8B", concurrency=32, limit=1, weights={
        "latency": 0, "throughput": 0, "quality": 0, "simplicity": 0, "cost": 1}))
    every = plan(PlanQuery("Llama-3.1-8B", concurrency=32, limit=100_000)).plans
    assert cheapest.plans[0].cost_per_million_output_tokens == min(p.cost_per_million_output_tokens for p in every)
    with pytest.raises(InvalidArgument, match="profile"):
        plan(PlanQuery("Llama-3.1-8B", profile="poetry"))
    with pytest.raises(InvalidArgument, match="weights"):
        plan(PlanQuery("Llama-3.1-8B", weights={"vibes": 1}))


def test_pareto_frontier_is_not_dominated():
    result = plan(PlanQuery("Llama-3.1-70B", concurrency=64, limit=1000))
    frontier = [p for p in result.plans if p.pareto]
    assert frontier
    lat = lambda p: p.dimension_scores["_latency_ms"]  # noqa: E731
    cost = lambda p: p.cost_per_million_output_tokens  # noqa: E731

    def dominated(p):
        return any(cost(o) <= cost(p) and lat(o) <= lat(p) and (cost(o) < cost(p) or lat(o) < lat(p))
                   for o in result.plans)
    assert all(p.pareto == (not dominated(p)) for p in result.plans)
    assert any(not p.pareto for p in result.plans)


def test_pareto_sweep_matches_the_definition_with_ties():
    from tmx_planner.domain.plans import RankedPlan, _mark_pareto

    points = [(1, 5), (1, 3), (1, 3), (2, 3), (2, 2), (3, 1), (3, 4), (0.5, 9), (0.5, 9), (4, 1)]
    plans = [RankedPlan(None, None, 0.0, c, dimension_scores={"_latency_ms": lat}) for c, lat in points]
    _mark_pareto(plans)
    assert [p.pareto for p in plans] == [False, True, True, False, True, True, False, True, True, False]


def test_plans_carry_launch_commands_and_manifests():
    import yaml

    best = plan(PlanQuery("Llama-3.1-70B", concurrency=16, engines=("vllm",), precisions=("fp8",),
                          gpus=("H100",), limit=1)).plans[0]
    assert best.launch_command.startswith("vllm serve meta-llama/Llama-3.1-70B-Instruct")
    assert f"--tensor-parallel-size {best.deployment.tp}" in best.launch_command
    assert "--quantization fp8" in best.launch_command and "--max-num-batched-tokens 8192" in best.launch_command
    manifest = yaml.safe_load(best.kubernetes_manifest)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert manifest["spec"]["replicas"] == best.deployment.replicas
    assert container["resources"]["limits"]["nvidia.com/gpu"] == best.deployment.tp


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
        await planner.Plan(planner_pb2.PlanRequest(model="Mistral-7B", profile="poetry",
                                                   workload=planner_pb2.Workload(isl=8, osl=1)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and info.value.details().startswith("profile:")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await planner.Plan(planner_pb2.PlanRequest(model="Mistral-7B", sla=planner_pb2.Sla(ttft_p95_ms=-5),
                                                   workload=planner_pb2.Workload(isl=8, osl=1)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("sla.ttft_p95_ms:")
    reply = await planner.Plan(planner_pb2.PlanRequest(model="Mistral-7B", sla=planner_pb2.Sla(ttft_p95_ms=0.1),
                                                       workload=planner_pb2.Workload(isl=8, osl=1)))
    assert not reply.plans and sum(reply.dropped_by_reason.values()) == reply.candidates_dropped > 0
    assert reply.best_fitting["ttft_p95_ms"] > 0.1


async def test_estimate_answers_every_line_and_never_fails_the_call(planner):
    good = planner_pb2.EstimateInput(model="Llama-3.1-8B-Instruct", gpu="H100", gpu_count=4, tp=1, engine="vllm",
                                     precision="bf16", isl=1024, osl=256, concurrency=128)
    offline = planner_pb2.EstimateInput(model="Llama-3.1-8B", gpu="H100", gpu_count=1, tp=1, engine="trtllm",
                                        precision="fp8", isl=1000, osl=1000)
    bad = planner_pb2.EstimateInput(model="Llama-3.1-8B", gpu="TPUv9", isl=1, osl=1)
    no_rate = planner_pb2.EstimateInput(model="Llama-3.1-8B", gpu="H100", gpu_count=1, tp=1, engine="vllm",
                                        precision="bf16", isl=100, osl=100, request_rate=float("nan"))
    reply = await planner.Estimate(planner_pb2.EstimateRequest(inputs=[good, bad, offline, no_rate]))
    first, second, third, fourth = reply.outputs
    assert first.fits and first.output_tok_s_total > 0 and first.ttft_p95_ms > first.ttft_p50_ms > 0 and not first.error
    assert second.error.startswith("gpu:")
    assert third.output_tok_s_total > 0 and not third.error
    assert fourth.error.startswith("request_rate: must be a finite number")  # it predicted NaN TTFTs


async def test_plan_rpc_with_a_profile_weights_and_a_hugging_face_config(planner):
    config = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
              "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 131072}
    reply = await planner.Plan(planner_pb2.PlanRequest(
        model="my-private-llama", hf_config_json=json.dumps(config), profile="rag", weights={"cost": 2.0},
        workload=planner_pb2.Workload(concurrency=16), limit=3))
    assert reply.resolved_model == "my-private-llama" and reply.profile == "rag"
    assert reply.weights["cost"] == max(reply.weights.values())
    assert all(p.launch_command and p.kubernetes_manifest and set(p.dimension_scores) ==
               {"latency", "throughput", "cost", "quality", "simplicity"} for p in reply.plans)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await planner.Plan(planner_pb2.PlanRequest(model="x", hf_config_json="{nope",
                                                   workload=planner_pb2.Workload(isl=1, osl=1)))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "hf_config_json" in info.value.details()


async def test_compare_plans_models_side_by_side(planner):
    reply = await planner.Compare(planner_pb2.CompareRequest(requests=[
        planner_pb2.PlanRequest(model=m, workload=planner_pb2.Workload(isl=512, osl=128, concurrency=8), limit=2)
        for m in ("Llama-3.1-8B", "Qwen3-8B", "gpt-oss-20b")]))
    assert [r.resolved_model for r in reply.responses] == ["Llama-3.1-8B", "Qwen3-8B", "gpt-oss-20b"]
    assert all(len(r.plans) == 2 for r in reply.responses)


async def test_catalogue_rpcs(planner):
    gpus = (await planner.ListHardware(planner_pb2.ListHardwareRequest())).gpus
    models = (await planner.ListModels(planner_pb2.ListModelsRequest())).models
    assert {"H100", "H200", "B200", "B300", "A100-80GB", "L40S", "L4", "A10G", "MI300X", "MI325X"} <= \
        {g.name for g in gpus}
    assert all(g.source for g in gpus)
    by_name = {m.name: m for m in models}
    assert by_name["DeepSeek-V3"].attention == "mla" and by_name["Gemma-3-27B"].attention == "gqa+sliding"
    assert by_name["Qwen3-235B-A22B"].experts == 128 and by_name["Qwen3-235B-A22B"].active_params_b == 22.2


LLAMA_CONFIG = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                "vocab_size": 128256, "intermediate_size": 14336, "max_position_embeddings": 131072}
BAD_PLAN_REQUESTS = [
    ({"weights": {"cost": float("nan")}}, "weights:"),
    ({"weights": {"cost": float("inf")}}, "weights:"),
    ({"workload": planner_pb2.Workload(isl=8, osl=8, request_rate=float("nan"))}, "workload.request_rate:"),
    ({"workload": planner_pb2.Workload(isl=8, osl=8, request_rate=float("inf"))}, "workload.request_rate:"),
    ({"workload": planner_pb2.Workload(isl=8, osl=8, concurrency=0)}, "workload.concurrency:"),
    ({"hf_config_json": "[" * 5000 + "]" * 5000}, "hf_config_json: not valid JSON"),
    ({"hf_config_json": json.dumps({**LLAMA_CONFIG, "num_attention_heads": 0})},
     "config: num_attention_heads must be within"),
    ({"hf_config_json": json.dumps({**LLAMA_CONFIG, "hidden_size": -1})}, "config: hidden_size must be within"),
    ({"hf_config_json": json.dumps({**LLAMA_CONFIG, "hidden_size": "4096"})}, "config: hidden_size must be an integer"),
    ({"hf_config_json": json.dumps({**LLAMA_CONFIG, "vocab_size": 1e300})}, "config: vocab_size must be within"),
    ({"hf_config_json": json.dumps({**LLAMA_CONFIG, "num_key_value_heads": 5})}, "config: num_attention_heads 32"),
    ({"hf_config_json": json.dumps({**LLAMA_CONFIG, "num_local_experts": 8, "num_experts_per_tok": 9})},
     "config: 9 experts per token of 8"),
    ({"hf_config_json": json.dumps({**LLAMA_CONFIG, "text_config": [1]})}, "config: text_config"),
    ({"hf_config_json": json.dumps({k: v for k, v in LLAMA_CONFIG.items() if k != "vocab_size"})},
     "config: config.json lacks 'vocab_size'"),
]


@pytest.mark.parametrize("fields, details", BAD_PLAN_REQUESTS)
async def test_a_plan_request_with_a_value_no_model_can_use_is_invalid_argument_naming_it(planner, fields, details):
    """Each was an INTERNAL error (a division by zero, a recursion) or a ranking of NaN scores."""
    request = planner_pb2.PlanRequest(model="Mistral-7B", **{"workload": planner_pb2.Workload(isl=8, osl=8), **fields})
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await planner.Plan(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and info.value.details().startswith(details), \
        info.value.details()


async def test_a_well_formed_config_still_plans_as_the_catalogue_entry_it_describes(planner):
    """The stricter reading changes nothing for a real config: Llama-3.1-8B's, as the catalogue has it."""
    from tmx_planner.domain.catalogue import find_model, model_from_hf_config

    model = model_from_hf_config("mine", {**LLAMA_CONFIG, "tie_word_embeddings": False})
    known = find_model("Llama-3.1-8B")
    dense = model_from_hf_config("dense", {**LLAMA_CONFIG, "num_experts_per_tok": 2})  # unused without experts
    assert dense.experts == 0 and dense.params_b == model.params_b
    assert (model.layers, model.hidden, model.heads, model.kv_heads, model.head_dim, model.context_length) == \
        (known.layers, known.hidden, known.heads, known.kv_heads, known.head_dim, known.context_length)
    assert model.params_b == pytest.approx(known.params_b, rel=0.01)
    reply = await planner.Plan(planner_pb2.PlanRequest(model="mine", hf_config_json=json.dumps(LLAMA_CONFIG),
                                                       workload=planner_pb2.Workload(isl=8, osl=8), limit=3))
    assert len(reply.plans) == 3 and reply.resolved_model == "mine"
