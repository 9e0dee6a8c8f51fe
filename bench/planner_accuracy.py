"""Planner accuracy against published measurements and planning speed, side by side in one run.

- In-sample: the shipped calibration (data/calibration.yaml) predicting the rows it was fitted on.
- Leave-one-out: each row predicted by a calibration fitted on the other rows only, i.e. on measurements
  the model has not seen (the honest figure).
- Uncalibrated: the datasheet-efficiency prior, for comparison.
- Plan time: full Plan() over every GPU x count x TP x engine x precision for several models.
Run: `python bench/planner_accuracy.py`.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import save  # noqa: E402

from tmx_planner.calibrate import load_rows  # noqa: E402
from tmx_planner.domain.calibration import PRIOR, errors, leave_one_out, summary  # noqa: E402
from tmx_planner.domain.performance import default_calibration  # noqa: E402
from tmx_planner.domain.plans import PlanQuery, plan  # noqa: E402


def main() -> None:
    rows = load_rows(None)
    shipped = default_calibration()
    in_sample, loo, prior = errors(rows, shipped), leave_one_out(rows, PRIOR), errors(rows, PRIOR)
    per_row = {(e.row, e.metric): e for e in loo}
    table = []
    print(f"{'row':8} {'metric':10} {'measured':>10} {'in-sample':>10} {'held-out':>10} {'held-out err':>12}")
    for e in in_sample:
        held = per_row.get((e.row, e.metric))
        table.append({"row": e.row, "metric": e.metric, "measured": e.measured, "in_sample": e.predicted,
                      "held_out": held.predicted if held else None, "held_out_ape": held.ape if held else None})
        print(f"{e.row:8} {e.metric:10} {e.measured:10.1f} {e.predicted:10.1f} "
              f"{held.predicted if held else float('nan'):10.1f} {held.ape * 100 if held else float('nan'):11.1f}%")
    summaries = {"prior_uncalibrated": summary(prior), "in_sample": summary(in_sample), "leave_one_out": summary(loo)}
    for name, s in summaries.items():
        print(name, {m: f"median {v['median_ape'] * 100:.1f}% p90 {v['p90_ape'] * 100:.1f}% (n={v['n']})"
                     for m, v in s.items()})
    timings = []
    for model in ("Llama-3.1-8B", "Llama-3.1-70B", "Qwen3-235B-A22B", "DeepSeek-R1", "gpt-oss-120b"):
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            result = plan(PlanQuery(model, concurrency=64, limit=10))
            runs.append((time.perf_counter() - started) * 1000)
        timings.append({"model": model, "candidates": result.considered, "median_ms": statistics.median(runs)})
        print(f"plan {model:18} {result.considered:5d} candidates in {statistics.median(runs):6.1f} ms (median of 5)")
    path = save("planner_accuracy", [{"summaries": summaries}, {"per_row": table}, {"plan_time": timings}],
                "8 published measurements (services/planner/tmx_planner/data/planner_calibration.csv); "
                "absolute percentage errors; TTFT rows compare p95 where the source gives p95, else p50 vs mean")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
