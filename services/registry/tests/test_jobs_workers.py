"""A job checked against the forge workers of its target, at submission."""

import pytest

from tmx_errors import FailedPrecondition, InvalidArgument
from tmx_registry.domain.jobs import JobSpec, WorkerInfo, check_against_workers

CPU = WorkerInfo("w1", "cpu", frozenset({"rmsnorm", "softmax"}), frozenset({"template", "inductor", "file"}))
AGENT = WorkerInfo("w2", "cpu", frozenset({"rmsnorm", "layernorm"}), frozenset({"template", "agent"}))
GPU = WorkerInfo("g1", "cuda-sm90", frozenset({"attention"}), frozenset({"template"}))


def job(**kw) -> JobSpec:
    return JobSpec(**{"op": "rmsnorm", "dtype": "float32", "shapes": ((8, 64),), "target": "cpu", **kw})


@pytest.mark.parametrize("spec", [
    job(), job(op="layernorm"),  # one worker of the target has it: enough
    job(generator="agent"),
    job(op="attention", target="cuda-sm90"),
    job(op="mine", generator="file", candidate_source="x = 1", reference_source="y = 1"),  # a custom op
    job(op="nope", target="cuda-sm80"),  # no worker of that target alive: it waits for one
])
def test_what_a_worker_of_the_target_can_run_is_accepted(spec):
    check_against_workers(spec, [CPU, AGENT, GPU])


def test_an_op_no_worker_of_the_target_has_is_refused_naming_theirs():
    with pytest.raises(InvalidArgument) as refused:
        check_against_workers(job(op="rmsnrom"), [CPU, AGENT, GPU])
    assert refused.value.field == "op"
    assert refused.value.message == ("op: unknown op 'rmsnrom'; the cpu workers have layernorm, rmsnorm, softmax "
                                     "(or send reference_source for a custom op)")
    with pytest.raises(InvalidArgument, match="unknown op 'attention'"):  # another target's op
        check_against_workers(job(op="attention"), [CPU, GPU])


def test_a_custom_op_may_not_take_a_library_ops_name():
    with pytest.raises(InvalidArgument, match="softmax is a library op; a custom op needs a name of its own"):
        check_against_workers(job(op="softmax", generator="file", candidate_source="x = 1",
                                  reference_source="y = 1"), [CPU])


def test_a_generator_no_worker_of_the_target_runs_for_the_op_is_a_failed_precondition():
    with pytest.raises(FailedPrecondition, match="no cpu worker runs the 'agent' generator for rmsnorm"):
        check_against_workers(job(generator="agent"), [CPU, GPU])
    with pytest.raises(FailedPrecondition, match="no cpu worker runs the 'agent' generator for softmax"):
        check_against_workers(job(op="softmax", generator="agent"), [CPU, AGENT])  # one has the op, one the agent
