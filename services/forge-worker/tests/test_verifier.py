"""The verifier runs each candidate in its own process (Triton interpreter on the cpu target)."""

from tmx_forge.verifier import verify


async def test_a_correct_configuration_passes_and_is_timed_against_eager():
    result = await verify("rmsnorm", "float32", "cpu", [[4, 64], [3, 33]], {"num_warps": 2, "rows_per_program": 2},
                          seed=3, repeats=2, timeout_s=120)
    assert result.ok, result.reason
    assert set(result.shapes) == {"4x64", "3x33"}
    for timing in result.shapes.values():
        assert timing["candidate_s"] > 0 and timing["baseline_s"] > 0
        assert timing["speedup"] == timing["baseline_s"] / timing["candidate_s"]


async def test_a_broken_configuration_is_rejected_with_its_reason():
    result = await verify("rmsnorm", "float32", "cpu", [[4, 64]], {"num_warps": 2, "rows_per_program": 3},
                          seed=3, repeats=1, timeout_s=120)  # 3 is not a power of two: triton refuses it
    assert not result.ok and result.reason.startswith("candidate raised")


async def test_a_candidate_that_runs_too_long_is_killed():
    result = await verify("rmsnorm", "float32", "cpu", [[4, 64]], {"num_warps": 1, "rows_per_program": 1},
                          seed=1, repeats=1, timeout_s=0.2)
    assert not result.ok and "timed out" in result.reason


async def test_every_output_of_a_multi_output_op_is_verified():
    result = await verify("fused_add_rmsnorm", "float16", "cpu", [[3, 40]], {"num_warps": 2, "rows_per_program": 1},
                          seed=9, repeats=1, timeout_s=120)
    assert result.ok, result.reason
