import pytest

from tmx_errors import InvalidArgument
from tmx_planner.domain.catalogue import find_gpu, find_model
from tmx_planner.domain.catalogue import gpus, model_from_hf_config, models
from tmx_planner.domain.memory import (ENGINE_OVERHEAD_GB, GPU_MEMORY_UTILIZATION, kv_bytes_per_sequence,
                                       kv_bytes_per_token, plan_memory)
from tmx_planner.domain.performance import Deployment, decode_step_s, default_calibration, predict, step_s

LLAMA8 = find_model("Llama-3.1-8B")
H100 = find_gpu("H100")


def test_names_match_loosely():
    assert find_model("meta-llama/Llama-3.1-8B-Instruct") is LLAMA8
    assert find_model("LLAMA-3.1-8b") is LLAMA8
    assert find_gpu("h100") is H100
    with pytest.raises(InvalidArgument, match="model"):
        find_model("gpt-17")


def test_catalogues_cover_the_required_hardware_and_models_with_sources():
    assert {"H100", "H200", "B200", "B300", "A100-80GB", "L40S", "L4", "A10G", "MI300X", "MI325X"} <= set(gpus())
    assert len(models()) >= 19 and all(m.source for m in models().values())
    assert all(g.source and g.memory_gb > 0 and g.hbm_gbs > 0 for g in gpus().values())


def test_weights_and_kv_per_token_follow_the_standard_formulas():
    m = plan_memory(LLAMA8, H100, tp=1, precision_name="bf16", isl=2048)
    assert m.weights_gb == pytest.approx(8.03 * 2)
    assert kv_bytes_per_token(LLAMA8, 1) == 2 * 32 * 8 * 128 * 2  # K+V x layers x kv heads x head dim x bf16
    budget = 80 * GPU_MEMORY_UTILIZATION["vllm"] - 16.06 - ENGINE_OVERHEAD_GB
    assert m.max_sequences == int(budget * 1e9 // (131072 * 2048))
    fp8 = plan_memory(LLAMA8, H100, tp=1, precision_name="fp8", isl=2048)
    assert fp8.weights_gb == pytest.approx(8.03, rel=1e-3) and fp8.max_sequences > m.max_sequences
    assert plan_memory(LLAMA8, H100, 4, "bf16", 2048).weights_gb == pytest.approx(16.06 / 4)
    assert kv_bytes_per_token(LLAMA8, 8) == 2 * 32 * 1 * 128 * 2
    assert kv_bytes_per_token(LLAMA8, 16) == kv_bytes_per_token(LLAMA8, 8)  # replicated past kv heads
    int4 = plan_memory(LLAMA8, H100, 1, "int4-awq", 2048)
    assert int4.weights_gb == pytest.approx(8.03 * (0.5 + 4 / 128))  # group-128 scales and zeros included


def test_paged_kv_capacity_uses_the_average_length_and_fp8_kv_for_trtllm():
    grow = plan_memory(LLAMA8, H100, 1, "bf16", isl=1024, osl=1024)
    assert grow.kv_bytes_per_sequence == kv_bytes_per_sequence(LLAMA8, 1, 1536)
    trt = plan_memory(LLAMA8, H100, 1, "fp8", isl=1024, osl=1024, engine="trtllm")
    assert trt.kv_bytes_per_sequence == kv_bytes_per_sequence(LLAMA8, 1, 1536) / 2


def test_moe_mla_and_sliding_window_memory():
    ds = find_model("deepseek-ai/DeepSeek-R1")
    assert ds.moe and ds.dense_params_b == pytest.approx((37 * 256 - 671 * 8) / (256 - 8))
    assert kv_bytes_per_token(ds, 8) == 61 * (512 + 64) * 2  # MLA latent, not sharded by TP
    assert plan_memory(ds, find_gpu("H200"), 8, "fp8", 1024).weights_gb == pytest.approx(671 / 8, rel=1e-3)
    gemma = find_model("google/gemma-3-27b-it")
    short, long = kv_bytes_per_sequence(gemma, 1, 1000), kv_bytes_per_sequence(gemma, 1, 100_000)
    per = 2 * 16 * 128 * 2
    assert short == per * 62 * 1000
    assert long == per * (10 * 100_000 + 52 * 1024)  # 52 local layers keep only their 1024-token window
    oss = find_model("gpt-oss-120b")
    assert oss.native_precision == "mxfp4" and oss.active_b == 5.1


def test_a_model_from_a_hugging_face_config():
    config = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
              "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 131072}
    m = model_from_hf_config("my-llama", config)
    assert m.params_b == pytest.approx(8.03, rel=0.01)  # Llama-3.1-8B's shapes give its parameter count
    assert kv_bytes_per_token(m, 1) == kv_bytes_per_token(LLAMA8, 1)
    moe = model_from_hf_config("my-moe", {**config, "num_local_experts": 8, "num_experts_per_tok": 2,
                                          "vocab_size": 32000, "max_position_embeddings": 32768})
    assert moe.moe and moe.params_b == pytest.approx(46.7, rel=0.01)  # Mixtral-8x7B's shapes
    assert moe.active_b == pytest.approx(12.9, rel=0.02)
    with pytest.raises(InvalidArgument, match="config"):
        model_from_hf_config("x", {"hidden_size": 1})


def test_a_70b_model_in_bf16_does_not_fit_one_l4():
    assert not plan_memory(find_model("Llama-3.1-70B"), find_gpu("L4"), 1, "bf16", 2048).fits


def test_decode_is_memory_bound_at_batch_one_and_grows_with_batch():
    cal = default_calibration()
    e = cal.engine("vllm")
    d = Deployment(LLAMA8, H100, 1, 1, "vllm", "bf16")
    bytes_read = 8.03e9 * 2 + 1024 * 131072
    assert decode_step_s(d, 1, 1024, cal) == pytest.approx(bytes_read / (3350e9 * e.bw_eff) + e.step_overhead_s)
    assert decode_step_s(d, 64, 1024, cal) > decode_step_s(d, 1, 1024, cal)
    def alone(tokens):  # a prompt prefilled in a step of its own
        return step_s(d, 0.0, tokens, tokens, 0.0, cal, e.prefill_eff)
    assert alone(4096) > 4 * alone(1024)  # attention is quadratic


def test_moe_decode_reads_only_the_experts_its_tokens_route_to():
    cal = default_calibration()
    mixtral = find_model("Mixtral-8x7B")
    d = Deployment(mixtral, H100, 1, 1, "vllm", "fp8")
    one, many = decode_step_s(d, 1, 64, cal), decode_step_s(d, 256, 64, cal)
    e = cal.engine("vllm")
    touched_one = mixtral.dense_params_b + (mixtral.params_b - mixtral.dense_params_b) * 2 / 8
    assert one - e.step_overhead_s == pytest.approx(
        (touched_one * 1e9 * (1 + 4 / 4096) + kv_bytes_per_sequence(mixtral, 1, 64)) / (3350e9 * e.bw_eff), rel=1e-6)
    assert many > one


def test_predictions_move_the_right_way():
    d = Deployment(LLAMA8, H100, 4, 1, "vllm", "bf16")
    low, high = predict(d, 1024, 256, 16), predict(d, 1024, 256, 128)
    assert high.output_tok_s_total > low.output_tok_s_total
    assert high.tpot_ms > low.tpot_ms and high.ttft_p95_ms > low.ttft_p95_ms
    assert high.ttft_p95_ms > high.ttft_p50_ms
    assert predict(Deployment(LLAMA8, H100, 8, 1, "vllm", "bf16"), 1024, 256, 128).output_tok_s_total > \
        high.output_tok_s_total
    offline = predict(d, 1024, 256, None)
    assert offline.saturated and offline.output_tok_s_total >= high.output_tok_s_total


def test_request_rate_finds_the_steady_state_batch():
    d = Deployment(LLAMA8, H100, 1, 1, "vllm", "bf16")
    p = predict(d, 512, 128, request_rate=5.0)
    requests_per_s = p.output_tok_s_total / 128
    assert requests_per_s == pytest.approx(5.0, rel=1e-6)
    with pytest.raises(InvalidArgument, match="capacity"):
        predict(d, 512, 128, request_rate=1e6)



def _with_cohorts(share):
    from dataclasses import replace
    return replace(default_calibration(), cohort_share=share)


def test_closed_loop_throughput_is_concurrency_over_the_request_cycle():
    """Little's law, the identity the published closed-loop rows were derived with."""
    d = Deployment(LLAMA8, H100, 2, 1, "vllm", "bf16")
    p = predict(d, 1024, 256, 64)
    assert p.output_tok_s_total == pytest.approx(64 * 256 / (p.ttft_p50_ms + 255 * p.tpot_ms) * 1000, rel=1e-12)


def test_cohorts_raise_closed_loop_ttft_only_where_prompts_can_share_a_step():
    d = Deployment(LLAMA8, H100, 1, 1, "vllm", "bf16")
    spread, waves = _with_cohorts(0.0), _with_cohorts(1.0)
    # 8 prompts of 1024 tokens fit one 8192-token step: a cohort's step is heavier than one prompt's
    assert predict(d, 1024, 256, 32, cal=waves).ttft_p50_ms > 2 * predict(d, 1024, 256, 32, cal=spread).ttft_p50_ms
    # one client, prompts longer than the step budget, or open-loop (Poisson) arrivals form no cohorts
    for args, kwargs in [((1024, 256, 1), {}), ((12000, 256, 32), {}), ((1024, 256), {"request_rate": 2.0})]:
        assert predict(d, *args, **kwargs, cal=waves) == predict(d, *args, **kwargs, cal=spread)


def test_a_prompt_longer_than_the_step_budget_is_prefilled_in_chunks():
    """192 prompt tokens are a memory-bound step (the weights are read once whatever the token count): with a
    64-token budget they take three such steps instead of one."""
    from dataclasses import replace
    cal = _with_cohorts(0.0)
    small = replace(cal, engines={**cal.engines, "vllm": replace(cal.engine("vllm"), max_batched_tokens=64)})
    d = Deployment(LLAMA8, H100, 1, 1, "vllm", "bf16")
    one_step, three_steps = predict(d, 192, 16, 1, cal=cal), predict(d, 192, 16, 1, cal=small)
    assert three_steps.ttft_p50_ms > 2.2 * one_step.ttft_p50_ms  # (both also wait half a decode step)


def test_a_closed_loop_that_only_prefills_queues_for_the_prefill_path():
    """With one output token there is no think time: N clients at one server wait about N services (the
    bottleneck bound), not the M/D/1 figure that saturates."""
    d = Deployment(LLAMA8, H100, 1, 1, "vllm", "bf16")
    cal = _with_cohorts(0.0)
    ttft = {c: predict(d, 4096, 1, c, cal=cal).ttft_p50_ms for c in (32, 64)}
    assert ttft[64] / ttft[32] == pytest.approx(2.0, rel=0.05)

@pytest.mark.parametrize("kwargs, field", [
    ({"engine": "ollama"}, "engine"), ({"precision": "fp3"}, "precision"), ({"tp": 3}, "tp"),
    ({"gpu_count": 4, "tp": 8}, "tp"),
])
def test_bad_deployments_name_the_field(kwargs, field):
    base = {"model": LLAMA8, "gpu": H100, "gpu_count": 4, "tp": 1, "engine": "vllm", "precision": "bf16"}
    with pytest.raises(InvalidArgument) as info:
        predict(Deployment(**{**base, **kwargs}), 100, 100, 1)
    assert info.value.field == field


def test_fp8_on_a_gpu_without_fp8_is_refused():
    with pytest.raises(InvalidArgument, match="FP8"):
        predict(Deployment(LLAMA8, find_gpu("A100-80GB"), 1, 1, "vllm", "fp8"), 100, 100, 1)
