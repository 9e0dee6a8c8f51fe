"""Custom ops from a job's reference module (executed here in the test; in the forge, only in a sandbox)."""

import pytest
import torch

from tmx_kernels.custom import DEFAULT_TOLERANCES, CustomOpError, op_from_source

SOURCE = '''import torch


def make_inputs(shape, dtype, seed, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=gen).to(device=device, dtype=dtype),)


def reference(x):
    return (x.double() * 2).to(x.dtype)


def baseline(x):
    return x * 2
'''


def test_a_minimal_reference_gets_the_defaults():
    op = op_from_source("double_it", SOURCE)
    (x,) = op.make_inputs((4, 8), torch.float32, 1, "cpu")
    assert torch.equal(op.reference(x), x * 2) and torch.equal(op.baseline(x), x * 2)
    assert {str(d).removeprefix("torch."): (t.atol, t.rtol) for d, t in op.tolerances.items()} == DEFAULT_TOLERANCES
    assert op.bytes_moved((4, 8), torch.float32) == 2 * 4 * 8 * 4  # the input and the output
    assert op.test_shapes == () and op.mutates == () and op.mismatch([x * 2], [x * 2], torch.float32) is None


def test_declared_tolerances_shapes_baseline_and_bytes_are_used():
    source = SOURCE + '''
TOLERANCES = {"bfloat16": (0.01, 0.02)}
TEST_SHAPES = [(3, 5)]
MUTATES = (0,)


def bytes_moved(shape, dtype):
    return 7
'''
    op = op_from_source("double_it", source)
    assert list(op.tolerances) == [torch.bfloat16] and op.tolerances[torch.bfloat16].rtol == 0.02
    assert op.test_shapes == ((3, 5),) and op.mutates == (0,) and op.bytes_moved((1,), torch.float32) == 7


@pytest.mark.parametrize("source, message", [
    ("def reference(x): ...\n", "must define make_inputs"),
    (SOURCE.replace("def baseline", "def eager"), "must define baseline"),
    ("x = (\n", "does not parse"),
    (SOURCE + "TOLERANCES = {'float32': (2, 0)}\n", "within"),
    (SOURCE + "TOLERANCES = {'float32': 1e-3}\n", r"must be \(atol, rtol\)"),
])
def test_bad_references_are_named(source, message):
    with pytest.raises(CustomOpError, match=message):
        op_from_source("bad", source)
