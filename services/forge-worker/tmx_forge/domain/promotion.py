"""The promotion rule: geometric-mean speedup >= 1.10x over the job's shapes, and no shape slower."""

from __future__ import annotations

import math
from dataclasses import dataclass

THRESHOLD = 1.10


@dataclass(frozen=True)
class Verdict:
    promote: bool
    geomean: float
    reason: str


def geomean(speedups: dict[str, float]) -> float:
    """Geometric mean of the valid (positive) speedups; 0 when there are none."""
    valid = [s for s in speedups.values() if s > 0]
    return math.exp(sum(map(math.log, valid)) / len(valid)) if valid else 0.0


def decide(speedups: dict[str, float], threshold: float = THRESHOLD) -> Verdict:
    if not speedups:
        return Verdict(False, 0.0, "no shape was measured")
    if any(s <= 0 for s in speedups.values()):
        return Verdict(False, 0.0, "a shape has no valid measurement")
    mean = geomean(speedups)
    slowest_shape, slowest = min(speedups.items(), key=lambda kv: kv[1])
    if mean < threshold:
        return Verdict(False, mean, f"geometric-mean speedup {mean:.3g}x is below {threshold}x")
    if slowest < 1.0:
        return Verdict(False, mean, f"shape {slowest_shape} is slower than the baseline ({slowest:.3g}x)")
    return Verdict(True, mean, f"geometric-mean speedup {mean:.3g}x >= {threshold}x on every shape")
