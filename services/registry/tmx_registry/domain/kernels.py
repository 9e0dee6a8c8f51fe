"""Kernel artifacts: identity by content hash, and which kernel wins for a (op, dtype, hardware)."""

from __future__ import annotations

import json

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
