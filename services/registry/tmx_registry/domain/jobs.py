"""Kernel jobs: what a valid submission is, and how progress reports move a job between states."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from tmx_errors import FailedPrecondition, InvalidArgument

_OP = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TARGET = re.compile(r"^(cpu|cuda-sm[0-9]{2,3}|rocm-gfx[0-9a-f]{3,4})$")
DTYPES = ("float32", "float16", "bfloat16")
GENERATORS = ("template", "inductor", "agent", "file")
MAX_CANDIDATE_BYTES = 256 * 1024
MAX_DIM = 1 << 20
MAX_ELEMENTS = 1 << 28


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    PROMOTED = "promoted"
    NOT_PROMOTED = "not_promoted"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.PROMOTED, JobState.NOT_PROMOTED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobSpec:
    op: str
    dtype: str
    shapes: tuple[tuple[int, ...], ...]
    target: str
    generator: str = "template"
    max_candidates: int = 4
    time_budget_s: float = 300.0
    candidate_source: str = ""  # generator "file": the user's candidate module
    reference_source: str = ""  # a custom op's own reference module (parsed here, run only in a worker sandbox)


def validate_job(spec: JobSpec, workers: Sequence[WorkerInfo] = ()) -> JobSpec:
    """`spec` if it is a valid submission: well-formed, and runnable by the workers of its target alive now
    (`workers`; see `check_against_workers`)."""
    if not _OP.match(spec.op):
        raise InvalidArgument("op", "must be a lower-case identifier such as 'rmsnorm'")
    if spec.dtype not in DTYPES:
        raise InvalidArgument("dtype", f"must be one of {', '.join(DTYPES)}")
    if not _TARGET.match(spec.target):
        raise InvalidArgument("target", "must be 'cpu', 'cuda-smNN' or 'rocm-gfxNNN'")
    if spec.generator not in GENERATORS:
        raise InvalidArgument("generator", f"must be one of {', '.join(GENERATORS)}")
    _validate_candidate(spec)
    if not spec.shapes:
        raise InvalidArgument("shapes", "at least one shape is required")
    for shape in spec.shapes:
        if not shape or any(d < 1 or d > MAX_DIM for d in shape):
            raise InvalidArgument("shapes", f"every dimension must be within 1..{MAX_DIM}; got {list(shape)}")
        elements = 1
        for d in shape:
            elements *= d
        if elements > MAX_ELEMENTS:
            raise InvalidArgument("shapes", f"shape {list(shape)} exceeds {MAX_ELEMENTS} elements")
    if not 1 <= spec.max_candidates <= 64:
        raise InvalidArgument("max_candidates", "must be within 1..64")
    if not 0 < spec.time_budget_s <= 24 * 3600:
        raise InvalidArgument("time_budget_s", "must be within (0, 86400]")
    check_against_workers(spec, workers)
    return spec


def _validate_candidate(spec: JobSpec) -> None:
    """A file job carries its candidate, a custom op its reference; both must parse (they are only parsed here,
    never run: the worker's sandbox runs them). Other generators make their own candidates."""
    if spec.reference_source:
        _validate_module("reference_source", spec.reference_source)
        if spec.generator not in ("file", "agent"):
            raise InvalidArgument("generator", "a custom op (reference_source) takes generator 'file' or 'agent'")
    if spec.generator != "file":
        if spec.candidate_source:
            raise InvalidArgument("candidate_source", "is only for generator 'file'")
        return
    if not spec.candidate_source.strip():
        raise InvalidArgument("candidate_source", "generator 'file' needs the candidate's source")
    _validate_module("candidate_source", spec.candidate_source)


def _validate_module(field: str, source: str) -> None:
    if len(source.encode()) > MAX_CANDIDATE_BYTES:
        raise InvalidArgument(field, f"is larger than {MAX_CANDIDATE_BYTES // 1024} KiB")
    try:
        ast.parse(source)
    except SyntaxError as exc:
        raise InvalidArgument(field, f"is not valid Python: line {exc.lineno}: {exc.msg}") from None


@dataclass(frozen=True)
class WorkerInfo:
    """What a forge worker alive now says it can do (its record in the workers bucket)."""
    worker_id: str
    target: str
    ops: frozenset[str]
    generators: frozenset[str]


def check_against_workers(spec: JobSpec, workers: Sequence[WorkerInfo]) -> None:
    """Refuse at submission what every worker of the job's target would fail: an op none of them has (a typo
    was accepted, then failed by the worker as "unknown op"), a custom op named like one they have, a generator
    none of them runs. With no worker of the target alive the job is accepted: it waits in the queue for one,
    whose own checks then apply."""
    workers = [w for w in workers if w.target == spec.target]
    if not workers:
        return
    ops = frozenset().union(*(w.ops for w in workers))
    if spec.reference_source:
        if spec.op in ops:
            raise InvalidArgument("op", f"{spec.op} is a library op; a custom op needs a name of its own")
    elif spec.op not in ops:
        raise InvalidArgument("op", f"unknown op {spec.op!r}; the {spec.target} workers have {', '.join(sorted(ops))}"
                                    " (or send reference_source for a custom op)")
    if not any(spec.generator in w.generators and (spec.reference_source or spec.op in w.ops) for w in workers):
        raise FailedPrecondition(f"no {spec.target} worker runs the {spec.generator!r} generator"
                                 f"{'' if spec.reference_source else ' for ' + spec.op} (an agent needs "
                                 "TMX_FORGE_AGENT_BASE_URL and TMX_FORGE_AGENT_MODEL on the worker)")


def next_state(current: JobState, reported: JobState) -> JobState | None:
    """The state a progress report moves a job to, or None when it must be ignored (a terminal job never
    changes again, so redelivered or late reports are harmless)."""
    if current.terminal or reported == JobState.QUEUED:
        return None
    return reported
