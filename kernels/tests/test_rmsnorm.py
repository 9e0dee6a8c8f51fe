"""RMSNorm against its fp64 reference, under the Triton interpreter on CPU (and on CUDA where present)."""

import pytest
import torch

from tmx_kernels import get_op, op_names

OP = get_op("rmsnorm")
SHAPES = [(1, 1), (7, 33), (4, 64), (3, 5, 129), (13, 257), (2, 1000)]  # odd, prime, non-power-of-two
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def test_registry_lists_the_op_with_everything_a_search_needs():
    assert "rmsnorm" in op_names()
    assert set(OP.tolerances) == set(DTYPES) and all(t.why for t in OP.tolerances.values())
    assert OP.default_config["num_warps"] in OP.search_space["num_warps"]
    assert OP.bytes_moved((4, 64), torch.float16) == (2 * 4 * 64 + 64) * 2
    with pytest.raises(KeyError, match="known"):
        get_op("nope")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape, dtype):
    x, w = OP.make_inputs(shape, dtype, seed=7)
    tol = OP.tolerances[dtype]
    expected = OP.reference(x, w)
    for config in ({"num_warps": 4, "rows_per_program": 1}, {"num_warps": 2, "rows_per_program": 4}):
        got = OP.launch(x, w, **config)
        assert got.shape == x.shape and got.dtype == dtype
        torch.testing.assert_close(got, expected, atol=tol.atol, rtol=tol.rtol)


def test_tolerance_is_tight_enough_to_catch_a_wrong_epsilon():
    x, w = OP.make_inputs((4, 64), torch.float32, seed=1)
    x = x * 1e-3  # small activations: eps matters
    wrong = OP.reference(x, w, eps=1e-3)
    tol = OP.tolerances[torch.float32]
    assert not torch.allclose(OP.launch(x, w), wrong, atol=tol.atol, rtol=tol.rtol)


def test_non_contiguous_rows_and_bad_weights():
    x, w = OP.make_inputs((6, 48), torch.float32, seed=3)
    view = x[:, :32]
    torch.testing.assert_close(OP.launch(view, w[:32]), OP.reference(view, w[:32]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="weight"):
        OP.launch(x, w[:10])


def test_inputs_are_seeded_and_contain_outliers():
    a, _ = OP.make_inputs((64, 64), torch.float32, seed=5)
    b, _ = OP.make_inputs((64, 64), torch.float32, seed=5)
    assert torch.equal(a, b) and a.abs().max() > 10


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("shape", [(4096, 4096), (8192, 8192), (1, 128256)])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_production_sizes_on_gpu(shape, dtype):
    x, w = OP.make_inputs(shape, dtype, seed=11, device="cuda")
    tol = OP.tolerances[dtype]
    torch.testing.assert_close(OP.launch(x, w), OP.reference(x, w), atol=tol.atol, rtol=tol.rtol)
