import pytest

from tmx_errors import InvalidArgument
from tmx_planner.domain.catalogue import find_gpu, find_model
from tmx_planner.domain.memory import ENGINE_OVERHEAD_GB, GPU_MEMORY_UTILIZATION, kv_bytes_per_token, plan_memory
from tmx_planner.domain.performance import Deployment, decode_step_s, predict, prefill_s

LLAMA8 = find_model("Llama-3.1-8B")
H100 = find_gpu("H100")


def test_names_match_loosely():
    assert find_model("meta-llama/Llama-3.1-8B-Instruct") is LLAMA8
    assert find_model("LLAMA-3.1-8b") is LLAMA8
    assert find_gpu("h100") is H100
    with pytest.raises(InvalidArgument, match="model"):
        find_model("gpt-17")


def test_weights_and_kv_per_token_follow_the_standard_formulas():
    m = plan_memory(LLAMA8, H100, tp=1, precision="bf16", seq_len=2048)
    assert m.weights_gb == pytest.approx(8.03 * 2)
    assert kv_bytes_per_token(LLAMA8, 1) == 2 * 32 * 8 * 128 * 2  # K+V x layers x kv heads x head dim x bf16
    budget = 80 * GPU_MEMORY_UTILIZATION - 16.06 - ENGINE_OVERHEAD_GB
    assert m.max_sequences == int(budget * 1e9 // (131072 * 2048))
    fp8 = plan_memory(LLAMA8, H100, tp=1, precision="fp8", seq_len=2048)
    assert fp8.weights_gb == pytest.approx(8.03) and fp8.max_sequences > m.max_sequences
    assert plan_memory(LLAMA8, H100, tp=4, precision="bf16", seq_len=2048).weights_gb == pytest.approx(16.06 / 4)
    assert kv_bytes_per_token(LLAMA8, 8) == 2 * 32 * 1 * 128 * 2
    assert kv_bytes_per_token(LLAMA8, 16) == kv_bytes_per_token(LLAMA8, 8)  # replicated past kv heads


def test_a_70b_model_in_bf16_does_not_fit_one_l4():
    assert not plan_memory(find_model("Llama-3.1-70B"), find_gpu("L4"), 1, "bf16", 2048).fits


def test_decode_is_memory_bound_at_batch_one_and_grows_with_batch():
    d = Deployment(LLAMA8, H100, 1, 1, "vllm", "bf16")
    weights_time = 8.03e9 * 2 / (3350e9 * 0.70)
    assert decode_step_s(d, 1, 1024) == pytest.approx(weights_time + 1024 * 131072 / (3350e9 * 0.7) + 0.0015)
    assert decode_step_s(d, 64, 1024) > decode_step_s(d, 1, 1024)
    assert prefill_s(d, 2048) > 2 * prefill_s(d, 512)  # attention is quadratic


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


@pytest.mark.parametrize("kwargs, field", [
    ({"engine": "ollama"}, "engine"), ({"precision": "fp3"}, "precision"), ({"tp": 3}, "tp"),
])
def test_bad_deployments_name_the_field(kwargs, field):
    base = {"model": LLAMA8, "gpu": H100, "gpu_count": 4, "tp": 1, "engine": "vllm", "precision": "bf16"}
    with pytest.raises(InvalidArgument) as info:
        predict(Deployment(**{**base, **kwargs}), 100, 100, 1)
    assert info.value.field == field


def test_fp8_on_a_gpu_without_fp8_is_refused():
    with pytest.raises(InvalidArgument, match="FP8"):
        predict(Deployment(LLAMA8, find_gpu("A100-80GB"), 1, 1, "vllm", "fp8"), 100, 100, 1)
