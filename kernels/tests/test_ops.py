"""Every op in the registry against its fp64 reference under the Triton interpreter, across odd shapes and
all dtypes, checking every output; plus each op's own edge cases."""

import pytest
import torch

from tmx_kernels import as_outputs, clone_inputs, get_op, op_names

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
CASES = [(name, shape) for name in op_names() for shape in get_op(name).test_shapes]


def assert_matches(op, inputs, dtype, config):
    tol = op.tolerances[dtype]
    expected = as_outputs(op.reference(*clone_inputs(inputs)))
    got = as_outputs(op.launch(*clone_inputs(inputs), **config))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype
        torch.testing.assert_close(g.float(), e.float(), atol=tol.atol, rtol=tol.rtol)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name, shape", CASES, ids=str)
def test_matches_reference(name, shape, dtype):
    op = get_op(name)
    inputs = op.make_inputs(shape, dtype, seed=5)
    for config in (op.default_config, {k: v[0] for k, v in op.search_space.items()}):
        assert_matches(op, inputs, dtype, config)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name, shape", [(n, s) for n in op_names() for s in get_op(n).bench_shapes[:2]], ids=str)
def test_production_sizes_on_gpu(name, shape, dtype):
    op = get_op(name)
    assert_matches(op, op.make_inputs(shape, dtype, seed=11, device="cuda"), dtype, op.default_config)


def test_every_op_carries_what_a_search_and_a_benchmark_need():
    assert {"rmsnorm", "fused_add_rmsnorm", "swiglu", "geglu", "softmax", "layernorm", "rope_neox", "rope_gptj",
            "attention", "kv_append", "kv_append_paged", "sampling", "int8_matmul", "fp8_quant", "fp8_matmul",
            "rmsnorm_bwd", "layernorm_bwd", "swiglu_bwd", "geglu_bwd", "rope_neox_bwd", "rope_gptj_bwd"} \
        <= set(op_names())
    for name in op_names():
        op = get_op(name)
        assert op.name == name and set(op.dtypes) == set(DTYPES)
        assert all(t.why for t in op.tolerances.values())
        assert all(op.default_config[k] in v for k, v in op.search_space.items())
        assert op.bound in ("memory", "compute") and op.test_shapes and len(op.bench_shapes) >= 3
        for shape in op.bench_shapes:
            assert op.bytes_moved(shape, torch.float16) > 0 and op.flops(shape) >= 0
        assert (op.flops(op.bench_shapes[0]) > 0) == (not name.startswith("kv_append"))


def test_fused_add_rmsnorm_returns_the_new_residual_exactly():
    op = get_op("fused_add_rmsnorm")
    x, r, w = op.make_inputs((4, 96), torch.float32, seed=2)  # fp32: the interpreter truncates to bf16
    y, h = op.launch(x, r, w)
    assert torch.equal(h, x + r)  # the residual stream is bit-identical to the unfused add
    assert not torch.allclose(y, get_op("rmsnorm").reference(x, w), atol=1e-2)  # the add matters


def test_swiglu_and_geglu_are_different_functions():
    gate, up = get_op("swiglu").make_inputs((64,), torch.float32, seed=1)
    s, g = get_op("swiglu").launch(gate, up), get_op("geglu").launch(gate, up)
    assert not torch.allclose(s, g, atol=1e-3)  # the tolerances could tell them apart


def test_softmax_masks_variable_lengths_and_survives_huge_logits():
    op = get_op("softmax")
    x = torch.tensor([[1000.0, 999.0, 5.0, 7.0], [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    lengths = torch.tensor([2, 4, 0], dtype=torch.int32)
    y = op.launch(x, lengths, block_n=2)  # rows longer than the tile: the online pass rescales
    torch.testing.assert_close(y, op.reference(x, lengths), atol=1e-6, rtol=1e-5)
    assert y[0, 2:].eq(0).all() and y[2].eq(0).all()  # masked tail and an empty row are zero
    assert torch.allclose(y[:2].sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="lengths"):
        op.launch(x, torch.tensor([5, 1, 1], dtype=torch.int32))


def test_layernorm_keeps_the_variance_of_a_large_mean_row_across_tiles():
    op = get_op("layernorm")
    x, w, b = op.make_inputs((2, 3000), torch.float32, seed=4)  # mean ~50, 3 tiles of 1024
    torch.testing.assert_close(op.launch(x, w, b, block_n=1024), op.reference(x, w, b), atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(op.launch(x, w, b, block_n=64), op.reference(x, w, b), atol=2e-5, rtol=1e-5)


def test_rope_layouts_differ_and_position_zero_is_the_identity():
    x, p = get_op("rope_neox").make_inputs((4, 2, 8), torch.float32, seed=3)
    neox, gptj = get_op("rope_neox").launch(x, p), get_op("rope_gptj").launch(x, p)
    assert not torch.allclose(neox, gptj, atol=1e-3)
    zero = torch.zeros(4, dtype=torch.long)
    assert torch.equal(get_op("rope_neox").launch(x, zero), x)
    norms = torch.linalg.vector_norm  # a rotation keeps each pair's length
    torch.testing.assert_close(norms(gptj.view(4, 2, 4, 2), dim=-1), norms(x.view(4, 2, 4, 2), dim=-1))


def test_attention_decode_aligns_the_causal_mask_bottom_right_and_maps_gqa_heads():
    op = get_op("attention")
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 3, 32, generator=gen)  # 3 new queries after 20 cached keys
    k, v = torch.randn(2, 2, 23, 32, generator=gen), torch.randn(2, 2, 23, 32, generator=gen)
    got = op.launch(q, k, v, block_m=16, block_n=16)
    torch.testing.assert_close(got, op.reference(q, k, v), atol=2e-5, rtol=2e-5)
    # the last query sees every key; a top-left mask would hide the last 20 from the first query
    full = op.reference(q[:, :, -1:], k, v, causal=False)
    torch.testing.assert_close(got[:, :, -1:], full, atol=2e-5, rtol=2e-5)
    # heads 0, 1 read kv head 0 and heads 2, 3 kv head 1: swapping the kv heads must change heads 0, 1
    swapped = op.launch(q, k.flip(1), v.flip(1), block_m=16, block_n=16)
    assert not torch.allclose(swapped[:, :2], got[:, :2], atol=1e-3)
    torch.testing.assert_close(op.launch(q, k, v, causal=False), op.reference(q, k, v, causal=False),
                               atol=2e-5, rtol=2e-5)
    with pytest.raises(ValueError, match="multiple"):
        op.launch(torch.randn(1, 3, 4, 16), torch.randn(1, 2, 4, 16), torch.randn(1, 2, 4, 16))


def test_kv_append_writes_only_its_slots():
    op = get_op("kv_append")
    k_cache, v_cache, k, v, lens = op.make_inputs((3, 4, 2, 8), torch.float32, seed=1)
    before = k_cache.clone()
    op.launch(k_cache, v_cache, k, v, lens)
    for b, start in enumerate(lens.tolist()):
        assert torch.equal(k_cache[b, start:start + 4], k[b]) and torch.equal(v_cache[b, start:start + 4], v[b])
        assert torch.equal(k_cache[b, :start], before[b, :start])  # the prefix is untouched
        assert torch.equal(k_cache[b, start + 4:], before[b, start + 4:])
    with pytest.raises(ValueError, match="overflows"):
        op.launch(k_cache, v_cache, k, v, torch.full((3,), k_cache.shape[1] - 1))


def test_paged_append_skips_padding_slots():
    op = get_op("kv_append_paged")
    k_cache, v_cache, k, v, slots = op.make_inputs((30, 2, 8, 4), torch.float16, seed=2)
    assert (slots == -1).any() and (slots >= 0).any()
    before = k_cache.clone()
    op.launch(k_cache, v_cache, k, v, slots)
    flat, old = k_cache.view(-1, 2, 8), before.view(-1, 2, 8)
    written = set(slots[slots >= 0].tolist())
    for slot in range(flat.shape[0]):
        if slot not in written:
            assert torch.equal(flat[slot], old[slot])
    for t, slot in enumerate(slots.tolist()):
        if slot >= 0:
            assert torch.equal(flat[slot], k[t])


def test_sampling_is_greedy_at_zero_temperature_and_respects_top_k():
    op = get_op("sampling")
    logits, noise, temp, top_k, top_p = op.make_inputs((6, 300), torch.float32, seed=3)
    temp[:] = 0.0
    assert torch.equal(op.launch(logits, noise, temp, top_k, top_p, block=64), logits.argmax(-1))
    temp[:], top_k[:], top_p[:] = 5.0, 3, 1.0  # hot: without the mask most draws would leave the top 3
    draws = torch.stack([op.launch(logits, torch.rand(6, 300, generator=torch.Generator().manual_seed(i))
                                   .clamp(1e-7, 1 - 1e-7), temp, top_k, top_p, block=64) for i in range(5)])
    top3 = logits.topk(3, dim=-1).indices
    assert all(int(d) in top3[row].tolist() for row in range(6) for d in draws[:, row])


def test_sampling_draws_follow_the_renormalised_nucleus():
    op = get_op("sampling")
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    probs = logits[0].double().softmax(0)  # 0.53, 0.20, 0.12, 0.07, 0.03, 0.003: top_p 0.8 keeps the first 3
    nucleus = probs[:3] / probs[:3].sum()

    def rows(n):
        return (logits.expand(n, 6).contiguous(), torch.ones(n), torch.full((n,), 6, dtype=torch.int32),
                torch.full((n,), 0.8))

    gen = torch.Generator().manual_seed(9)
    n = 3000  # the reference's draws follow the nucleus within three binomial standard deviations
    x, temp, top_k, top_p = rows(n)
    counts = torch.bincount(op.reference(x, torch.rand(n, 6, generator=gen).clamp(1e-7, 1 - 1e-7), temp, top_k,
                                         top_p), minlength=6).double()
    assert counts[3:].sum() == 0
    assert ((counts[:3] - nucleus * n).abs() <= 3 * (n * nucleus * (1 - nucleus)).sqrt()).all()
    n = 48  # and the kernel draws exactly the reference's token for the same noise
    x, temp, top_k, top_p = rows(n)
    noise = torch.rand(n, 6, generator=gen).clamp(1e-7, 1 - 1e-7)
    tokens = op.launch(x, noise, temp, top_k, top_p, block=8)
    assert torch.equal(tokens, op.reference(x, noise, temp, top_k, top_p)) and tokens.max() <= 2


def test_sampling_keeps_ties_at_the_kth_value():
    op = get_op("sampling")
    logits = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0]])
    noise = torch.tensor([[0.5, 0.1, 0.2, 0.99, 0.5]])  # the largest gumbel sits on the third tied value
    one = torch.ones(1)
    token = op.launch(logits, noise, one, torch.tensor([2], dtype=torch.int32), one)
    assert int(token) == 3 == int(op.reference(logits, noise, one, torch.tensor([2], dtype=torch.int32), one))
    with pytest.raises(ValueError, match="top_p"):
        op.launch(logits, noise, one, torch.tensor([2], dtype=torch.int32), torch.zeros(1))


def test_int8_matmul_applies_each_channel_scale():
    op = get_op("int8_matmul")
    x, w_q, scale = op.make_inputs((5, 12, 40), torch.float32, seed=4)
    assert w_q.dtype == torch.int8 and w_q.abs().max() == 127
    got = op.launch(x, w_q, scale, block_m=16, block_n=32, block_k=32)
    torch.testing.assert_close(got, op.reference(x, w_q, scale), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, op.reference(x, w_q, scale.flip(0)), atol=1e-2)


def test_fp8_quant_rounds_like_torch_saturates_and_keeps_subnormals():
    op = get_op("fp8_quant")
    (x,) = op.make_inputs((6, 500), torch.float32, seed=6)
    q, scale = op.launch(x, block=128)
    q_ref, scale_ref = op.reference(x)
    torch.testing.assert_close(scale, scale_ref, atol=0, rtol=1e-6)
    mismatched = (q.float() != q_ref.float()).float().mean()
    assert mismatched < 0.01  # only a value exactly on a rounding boundary may differ
    assert q.float().abs().max() == 448.0  # every row's amax maps to e4m3's largest value
    tiny = q_ref.float().abs()
    assert ((tiny > 0) & (tiny < 2 ** -6)).any()  # subnormals are produced and match
    assert torch.equal(q.float()[(tiny > 0) & (tiny < 2 ** -6)], q_ref.float()[(tiny > 0) & (tiny < 2 ** -6)])
    error = (q.float() * scale - x).abs()
    assert (error <= x.abs() / 16 + scale * 2 ** -10).all()  # within half an e4m3 step (normal or subnormal)


def test_fp8_matmul_matches_dequantised_product():
    op = get_op("fp8_matmul")
    a, sa, b, sb, out = op.make_inputs((9, 20, 70), torch.float32, seed=8)
    got = op.launch(a, sa, b, sb, out, block_m=16, block_n=16, block_k=32)
    torch.testing.assert_close(got, op.reference(a, sa, b, sb, out), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["rope_neox", "rope_gptj"])
def test_rope_backward_undoes_the_forward(name):
    fwd, bwd = get_op(name), get_op(name + "_bwd")
    x, p = fwd.make_inputs((4, 3, 16), torch.float32, seed=2)
    torch.testing.assert_close(bwd.launch(fwd.launch(x, p), p), x, atol=2e-6, rtol=1e-5)


def test_norm_backwards_agree_with_finite_differences():
    op = get_op("rmsnorm_bwd")
    dy, x, w = (t.double() for t in op.make_inputs((3, 16), torch.float32, seed=1))
    dx, dw = op.reference(dy, x, w)
    h = 1e-6
    bump = torch.zeros_like(x)
    bump[1, 5] = h
    forward = get_op("rmsnorm").reference
    numeric = ((forward(x + bump, w) - forward(x - bump, w)) * dy).sum() / (2 * h)
    assert abs(float(numeric) - float(dx[1, 5])) < 1e-8
    got_dx, got_dw = op.launch(*op.make_inputs((3, 16), torch.float32, seed=1))
    torch.testing.assert_close(got_dx.double(), dx, atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(got_dw.double(), dw, atol=2e-5, rtol=2e-5)
