"""Every op in the registry against its fp64 reference under the Triton interpreter, across odd shapes and
all dtypes, checking every output; plus each op's own edge cases."""

import pytest
import torch

from tmx_kernels import get_op, op_names

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SHAPES = {"fused_add_rmsnorm": [(1, 1), (7, 33), (3, 5, 129)], "swiglu": [(1,), (7, 33), (3, 1000)],
          "geglu": [(1,), (7, 33), (3, 1000)], "softmax": [(1, 1), (7, 33), (5, 300)],
          "layernorm": [(1, 1), (7, 33), (3, 2500)], "rope_neox": [(1, 1, 2), (5, 3, 64), (3, 2, 96)],
          "rope_gptj": [(1, 1, 2), (5, 3, 64), (3, 2, 96)]}


def outputs(result):
    return result if isinstance(result, tuple) else (result,)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name, shape", [(n, s) for n, shapes in SHAPES.items() for s in shapes])
def test_matches_reference(name, shape, dtype):
    op = get_op(name)
    inputs = op.make_inputs(shape, dtype, seed=5)
    tol = op.tolerances[dtype]
    alternatives = [op.default_config, {k: v[0] for k, v in op.search_space.items()}]
    expected = outputs(op.reference(*inputs))
    for config in alternatives:
        got = outputs(op.launch(*inputs, **config))
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape and g.dtype == dtype
            torch.testing.assert_close(g, e, atol=tol.atol, rtol=tol.rtol)


def test_every_op_carries_what_a_search_and_a_benchmark_need():
    assert {"rmsnorm", "fused_add_rmsnorm", "swiglu", "geglu", "softmax", "layernorm", "rope_neox",
            "rope_gptj"} <= set(op_names())
    for name in op_names():
        op = get_op(name)
        assert op.name == name and set(op.tolerances) == set(DTYPES)
        assert all(t.why for t in op.tolerances.values())
        assert all(op.default_config[k] in v for k, v in op.search_space.items())
        shape = (4, 2, 64) if name.startswith("rope") else (4, 64)
        assert op.bytes_moved(shape, torch.float16) > 0 and op.flops(shape) > 0


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
