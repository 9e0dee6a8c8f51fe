"""A job's own op: its reference runs sandboxed, never in the worker, and candidates are judged against it."""

from pathlib import Path

import pytest

from tmx_forge.domain.candidates import Candidate
from tmx_forge.verifier import Limits, ReferenceFailed, Verifier

FAST = Limits(wall_s=120, repeats=3, min_batch_s=0.005, compile_baseline=True)

GELU_TANH = (Path(__file__).parent / "references" / "gelu_tanh.py").read_text()


def verifier(reference=GELU_TANH, shapes=([16, 64],)) -> Verifier:
    return Verifier("my_gelu_tanh", "float32", "cpu", [list(s) for s in shapes], FAST, reference_source=reference)


def test_an_honest_candidate_of_a_custom_op_is_verified_and_timed_against_its_eager_reference():
    v = verifier()
    try:
        assert v.check_shapes == [[16, 64], [3, 33], [5, 17]]  # the job's shapes and the reference's odd ones
        verdict = v.verify(Candidate("import torch\n\n\ndef launch(x):\n"
                                     "    return torch.nn.functional.gelu(x, approximate='tanh')\n", label="mine"))
        assert verdict.ok and verdict.benchmarked, verdict.reason
        assert verdict.shapes["16x64"]["baseline"] == "eager"  # no torch.compile of a job's own code
    finally:
        v.close()


def test_a_wrong_candidate_of_a_custom_op_is_rejected_as_incorrect():
    v = verifier()
    try:
        verdict = v.verify(Candidate("import torch\n\n\ndef launch(x):\n    return torch.nn.functional.gelu(x)\n"))
        assert not verdict.ok and verdict.reason_code == "incorrect" and "exceeds atol 1e-05" in verdict.reason
    finally:
        v.close()


def test_a_kernel_faster_than_copying_the_bytes_its_op_moves_is_rejected():
    """No kernel moves its bytes in under half the time a plain copy of them takes. Here the op claims to move
    8 MiB where it moves 8 KiB: an honest kernel measures far under the floor, and the verdict says so, naming the
    bytes, so the op's author sees which figure is wrong."""
    claimed = 8 * 2**20
    v = verifier(GELU_TANH + f"\n\ndef bytes_moved(shape, dtype):\n    return {claimed}\n")
    try:
        verdict = v.verify(Candidate("import torch\n\n\ndef launch(x):\n"
                                     "    return torch.nn.functional.gelu(x, approximate='tanh')\n"))
        assert not verdict.ok and verdict.reason_code == "faster_than_hardware", verdict.reason
        assert f"plain copy of the {claimed} bytes the op moves" in verdict.reason and "16x64" in verdict.reason
    finally:
        v.close()


@pytest.mark.parametrize("reference, expected", [
    ("import socket\nsocket.socket()\n", "sandbox_violation"),
    ("open('/tmp/tmx-reference-escape', 'w')\n", "sandbox_violation"),
    ("def reference(x):\n    return x\n", "must define make_inputs"),
    (GELU_TANH.replace("def baseline", "def eager"), "must define baseline"),
    ("def reference(x:\n", "does not parse"),
    (GELU_TANH.replace('"float32": (1e-5, 1e-5)', '"float64": (1e-5, 1e-5)'), "unknown dtype 'float64'"),
])
def test_a_reference_that_misbehaves_fails_the_job_not_the_worker(reference, expected):
    with pytest.raises(ReferenceFailed, match=expected):
        verifier(reference)


def test_a_reference_that_crashes_on_a_shape_fails_the_job_without_blaming_the_candidate():
    crashing = GELU_TANH.replace("    d = x.double()", "    if x.shape[-1] == 17:\n        raise ValueError('odd')\n"
                                                    "    d = x.double()")
    v = verifier(crashing)
    try:
        with pytest.raises(ReferenceFailed, match="failed on reference"):
            v.verify(Candidate("import torch\n\n\ndef launch(x):\n"
                               "    return torch.nn.functional.gelu(x, approximate='tanh')\n"))
    finally:
        v.close()
