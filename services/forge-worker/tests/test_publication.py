"""What a promotion sends the registry besides the kernel: runs, the op spec and the environment."""

import json

import torch

from tmx_forge.verifier import Limits, Verdict, Verifier
from tmx_forge.worker import _environment, _op_spec, _runs
from tmx_kernels import get_op


def test_runs_record_every_checked_shape_and_every_timed_one():
    verifier = Verifier("rmsnorm", "float32", "cpu", [[8, 64]], Limits(), seed=11)
    verdict = Verdict(True, "passed", "", {"8x64": {"candidate_s": 1e-4, "baseline_s": 1.5e-4, "baseline": "eager",
                                                    "speedup": 1.5, "pairs_won": 7, "pairs": 7}}, benchmarked=True)
    runs = _runs(verifier, verdict)
    checked = [list(r.shape) for r in runs if r.kind == "verification"]
    assert checked == verifier.check_shapes and [8, 64] in checked and len(checked) > 1
    (timed,) = [r for r in runs if r.kind == "benchmark"]
    assert list(timed.shape) == [8, 64] and timed.speedup == 1.5 and (timed.pairs_won, timed.pairs) == (7, 7)
    assert all(r.passed and r.seed == 11 for r in runs)


def test_the_op_spec_carries_the_reference_and_the_harness_tolerances():
    op = get_op("rmsnorm")
    spec = _op_spec(op)
    assert spec.name == "rmsnorm" and spec.reference_source.lstrip().startswith("def ")
    tolerances = json.loads(spec.tolerance_json)
    assert tolerances["float32"] == {"atol": op.tolerances[torch.float32].atol,
                                     "rtol": op.tolerances[torch.float32].rtol}


def test_the_cpu_environment_names_the_processor_and_the_toolchain():
    env = _environment("cpu")
    assert env.capability == "cpu" and env.device and env.torch == torch.__version__ and env.driver == ""
