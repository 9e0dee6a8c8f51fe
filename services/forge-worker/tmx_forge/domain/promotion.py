"""The promotion rule: geometric-mean speedup >= 1.10x over the job's shapes, no shape slower, and on every
shape the candidate consistently faster in the interleaved timing pairs (a one-sided sign test at 5%), so a
median that noise pushed over the line does not promote."""

from __future__ import annotations

import math
from dataclasses import dataclass

THRESHOLD = 1.10
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Verdict:
    promote: bool
    geomean: float
    reason: str


def geomean(speedups: dict[str, float]) -> float:
    """Geometric mean of the valid (positive) speedups; 0 when there are none."""
    valid = [s for s in speedups.values() if s > 0]
    return math.exp(sum(map(math.log, valid)) / len(valid)) if valid else 0.0


def sign_test(wins: int, pairs: int) -> float:
    """P(at least `wins` of `pairs` fair coin flips come up heads): how likely a candidate no faster than the
    baseline would win this many interleaved pairs."""
    return sum(math.comb(pairs, k) for k in range(wins, pairs + 1)) / 2**pairs


def decide(speedups: dict[str, float], threshold: float = THRESHOLD,
           wins: dict[str, tuple[int, int]] | None = None) -> Verdict:
    """wins: per shape, (pairs the candidate won, pairs timed); without it only the medians are judged."""
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
    for shape, (won, pairs) in sorted((wins or {}).items()):
        p = sign_test(won, pairs)
        if p >= SIGNIFICANCE:
            return Verdict(False, mean, f"shape {shape}: faster in only {won} of {pairs} interleaved pairs "
                                        f"(sign test p = {p:.3g} >= {SIGNIFICANCE}): not a consistent speedup")
    return Verdict(True, mean, f"geometric-mean speedup {mean:.3g}x >= {threshold}x on every shape")
