"""Kernel artifacts: identity by content hash, which kernel serves a device and shape, and the promotion
decision log."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from tmx_artifacts import content_hash as artifact_hash
from tmx_errors import InvalidArgument

PROMOTION_THRESHOLD = 1.10


def content_hash(source: str, config_json: str) -> str:
    """sha256 over the source and the canonical JSON of its launch configuration."""
    try:
        config = json.loads(config_json or "{}")
    except ValueError as exc:
        raise InvalidArgument("config_json", f"not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InvalidArgument("config_json", "must be a JSON object of launch keyword arguments")
    return artifact_hash(source, config)


def validate_publication(op: str, dtype: str, hardware: str, source: str, speedup: float, evidence_json: str) -> None:
    if not op:
        raise InvalidArgument("op", "is required")
    if not dtype:
        raise InvalidArgument("dtype", "is required")
    if not hardware:
        raise InvalidArgument("hardware", "is required")
    if not source.strip():
        raise InvalidArgument("source", "is required")
    if speedup < PROMOTION_THRESHOLD:
        raise InvalidArgument("speedup", f"{speedup:.3f}x is below the promotion threshold {PROMOTION_THRESHOLD}x")
    try:
        evidence = json.loads(evidence_json or "")
    except ValueError:
        raise InvalidArgument("evidence_json", "verified kernels need their evidence as JSON") from None
    if not isinstance(evidence, dict) or not evidence:
        raise InvalidArgument("evidence_json", "must be a non-empty JSON object")


# --- resolution by hardware capability and shape ------------------------------------------------------------
_CUDA = re.compile(r"^cuda-sm([0-9]{2,3})$")


def compatibility(kernel_hardware: str, device_hardware: str) -> int | None:
    """How far a kernel verified on `kernel_hardware` is from the device: 0 for the same target, n for a CUDA
    kernel n compute-capability steps below the device (Triton compiles it there from source), None when it
    cannot serve the device at all (another family, or a newer capability than the device has)."""
    if kernel_hardware == device_hardware:
        return 0
    kernel, device = _CUDA.match(kernel_hardware), _CUDA.match(device_hardware)
    if kernel and device and int(kernel[1]) <= int(device[1]):
        return int(device[1]) - int(kernel[1])
    return None


@dataclass(frozen=True)
class Eligible:
    """What resolution needs to know of one stored, non-revoked kernel."""

    kernel_id: str
    hardware: str
    speedup: float  # geometric mean over its job's shapes
    created_at_ms: int
    shape_speedups: dict[tuple[int, ...], float] = field(default_factory=dict)  # from its benchmark runs


def rank(kernels: list[Eligible], device_hardware: str, shape: tuple[int, ...] = ()) -> list[Eligible]:
    """Best first: the closest hardware; then, for a given shape, kernels benchmarked at that shape ahead of
    those that were not, by the speedup measured there; else by geometric mean; the newest on a tie."""
    def key(k: Eligible):
        at_shape = k.shape_speedups.get(tuple(shape)) if shape else None
        return (compatibility(k.hardware, device_hardware), at_shape is None,
                -(at_shape if at_shape is not None else k.speedup), -k.created_at_ms)

    return sorted((k for k in kernels if compatibility(k.hardware, device_hardware) is not None), key=key)


# --- the promotion decision log -------------------------------------------------------------------------------
PROMOTED, SUPERSEDED, REVOKED = "promoted", "superseded", "revoked"


@dataclass(frozen=True)
class DecisionEntry:
    kernel_id: str
    decision: str
    reason: str


def on_publish(new_id: str, new_speedup: float, default: tuple[str, float] | None) -> list[DecisionEntry]:
    """A newly verified kernel becomes the default for its (op, dtype, hardware) when it beats the current one;
    otherwise it is logged as promoted and at once superseded (it still serves shapes where it measured better)."""
    if default is None:
        return [DecisionEntry(new_id, PROMOTED, f"first verified kernel here, {new_speedup:.3f}x")]
    default_id, default_speedup = default
    if new_speedup > default_speedup:
        return [DecisionEntry(default_id, SUPERSEDED, f"superseded by {new_id} ({new_speedup:.3f}x > "
                                                      f"{default_speedup:.3f}x)"),
                DecisionEntry(new_id, PROMOTED, f"beats {default_id} ({new_speedup:.3f}x > {default_speedup:.3f}x)")]
    return [DecisionEntry(new_id, PROMOTED, f"verified at {new_speedup:.3f}x"),
            DecisionEntry(new_id, SUPERSEDED, f"{default_id} stays the default ({default_speedup:.3f}x >= "
                                              f"{new_speedup:.3f}x)")]


def on_revoke(kernel_id: str, reason: str, was_default: bool, next_best: str | None) -> list[DecisionEntry]:
    """Revoking the default reinstates the best remaining kernel as the default."""
    if not reason.strip():
        raise InvalidArgument("reason", "say why the kernel is revoked")
    entries = [DecisionEntry(kernel_id, REVOKED, reason)]
    if was_default and next_best is not None:
        entries.append(DecisionEntry(next_best, PROMOTED, f"reinstated as the default: {kernel_id} was revoked"))
    return entries


def reference_hash(reference_source: str) -> str:
    """The version of an op spec: sha256 of its reference implementation's source."""
    return "sha256:" + hashlib.sha256(reference_source.encode()).hexdigest()


RUN_KINDS = ("verification", "benchmark")


def validate_runs(runs: list) -> None:
    for run in runs:
        if run.kind not in RUN_KINDS:
            raise InvalidArgument("runs", f"kind must be one of {', '.join(RUN_KINDS)}; got {run.kind!r}")
        if not run.shape or any(d < 1 for d in run.shape):
            raise InvalidArgument("runs", f"every run needs a shape of positive dimensions; got {list(run.shape)}")


# --- records ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Provenance:
    generator: str = ""
    model: str = ""
    prompt_hash: str = ""
    worker_id: str = ""
    toolchain_json: str = "{}"


@dataclass(frozen=True)
class Environment:
    device: str = ""
    capability: str = ""
    driver: str = ""
    torch: str = ""
    triton: str = ""


@dataclass(frozen=True)
class RunRecord:
    kind: str
    shape: tuple[int, ...]
    passed: bool
    seed: int = 0
    candidate_s: float = 0.0
    baseline_s: float = 0.0
    baseline: str = ""
    speedup: float = 0.0
    pairs_won: int = 0
    pairs: int = 0
    job_id: str = ""
    created_at_ms: int = 0


@dataclass(frozen=True)
class DecisionRecord:
    kernel_id: str
    op: str
    dtype: str
    hardware: str
    decision: str
    reason: str
    actor: str
    created_at_ms: int


@dataclass(frozen=True)
class OpSpec:
    name: str
    reference_source: str
    tolerance_json: str = "{}"
    reference_hash: str = ""
    created_at_ms: int = 0
