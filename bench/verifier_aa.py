"""A/A test of the forge verifier's timing: the same code on both sides must not look faster.

Two parts, each comparing two arms side by side, the arms alternating run by run so both see the same moments
of a shared machine:
- processes: the same eager op (x * sigmoid(1.702 x), 256x1024 fp32) timed in fresh processes, one after
  another, each starting from a random heap history (a few buffers of 64 KiB to 4 MiB, half of them freed),
  as a candidate's imports and set-up differ from a baseline's: how far one process's time is from the next's,
  with glibc's allocator thresholds left to adapt (`adaptive`) and fixed (`fixed`, what the verifier gives
  every timed process, verifier.MALLOC_ENV);
- verdicts: the real verifier on a candidate identical to a custom op's eager baseline (the e2e test's
  quick_gelu): per verdict the speedup, the interleaved pairs the candidate won and whether the promotion
  rule would promote it (it never should), with every other process stopped while one is timed (`alone`,
  what the verifier does) and as it was before, only the candidate stopped, and only while a baseline or the
  copy floor was timed (`lopsided`), both on one torch thread per process (verifier.Limits.cpu_threads), and
  `alone` on torch's default thread count, one per core (`alone-all-threads`). The geometric mean of the
  speedups is the timing's bias (1.0: none), the sd of their logs its noise.

    python bench/verifier_aa.py [--processes 16] [--verdicts 10]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PROCESS = """
import random
history = [bytearray(random.randrange(1, 64) * 65536) for _ in range(random.randrange(0, 8))]
del history[::2]
import statistics, time, torch
sets = [torch.randn(256, 1024) for _ in range(30)]
def f(x): return x * torch.sigmoid(1.702 * x)
for x in sets[:3]: f(x)
times = []
for _ in range(10):
    start = time.perf_counter()
    for x in sets: f(x)
    times.append((time.perf_counter() - start) / len(sets))
print(statistics.median(times))
"""

REFERENCE = (HERE.parent / "services/forge-worker/tests/references/quick_gelu.py").read_text()  # the e2e test's op
CANDIDATE = "import torch\n\n\ndef launch(x):\n    return x * torch.sigmoid(1.702 * x)\n"


def one_process(fixed: bool) -> float:
    from tmx_forge.verifier import MALLOC_ENV

    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    if fixed:
        env.update(MALLOC_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "time_one_op.py")
        script.write_text(PROCESS)
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@contextlib.contextmanager
def _lopsided(self, timed, processes):
    """The verifier's isolation before `Verifier._alone`: only the candidate stopped, only while another is timed."""
    candidate = next((p for p in processes if p.role == "candidate"), None)
    if candidate is None or timed is candidate:
        yield
        return
    candidate.stop()
    try:
        yield
    finally:
        candidate.resume()


def one_verdict(alone: bool, threads: int) -> dict:
    from tmx_forge import verifier as verifier_module
    from tmx_forge.domain.candidates import Candidate
    from tmx_forge.domain.promotion import decide

    isolation = verifier_module.Verifier._alone
    if not alone:
        verifier_module.Verifier._alone = _lopsided
    try:
        v = verifier_module.Verifier("quick_gelu", "float32", "cpu", [[256, 1024]],
                                     verifier_module.Limits(cpu_threads=threads), reference_source=REFERENCE)
        try:
            verdict = v.verify(Candidate(CANDIDATE))
        finally:
            v.close()
    finally:
        verifier_module.Verifier._alone = isolation
    if not verdict.ok:
        raise SystemExit(f"the identical candidate failed verification: {verdict.reason}")
    timing = verdict.shapes["256x1024"]
    return {"speedup": timing["speedup"], "pairs_won": timing["pairs_won"], "pairs": timing["pairs"],
            "promoted": decide(verdict.speedups, wins=verdict.wins).promote}


def spread(values: list[float]) -> float:
    """Largest over smallest."""
    return max(values) / min(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--verdicts", type=int, default=10)
    args = parser.parse_args()
    import record

    arms = {"adaptive": False, "fixed": True}
    rows = []
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    for i in range(args.processes):
        for arm, fixed in arms.items():
            t = one_process(fixed)
            times[arm].append(t)
            rows.append({"part": "process", "arm": arm, "run": i, "us_per_call": t * 1e6})
        print(f"process {i}: " + ", ".join(f"{arm} {times[arm][-1] * 1e6:.0f} us" for arm in arms), flush=True)
    isolations = {"alone": (True, 1), "lopsided": (False, 1), "alone-all-threads": (True, 0)}
    verdicts: dict[str, list[dict]] = {arm: [] for arm in isolations}
    for i in range(args.verdicts):
        for arm, (alone, threads) in (isolations.items() if i % 2 == 0 else reversed(isolations.items())):
            v = one_verdict(alone, threads)
            verdicts[arm].append(v)
            rows.append({"part": "verdict", "arm": arm, "run": i, **v})
        print(f"verdict {i}: " + ", ".join(
            f"{arm} {verdicts[arm][-1]['speedup']:.2f}x ({verdicts[arm][-1]['pairs_won']}/{verdicts[arm][-1]['pairs']}"
            f" pairs)" for arm in isolations), flush=True)
    summary: dict = {"process": {}, "verdict": {}}
    for arm in arms:
        us = [t * 1e6 for t in times[arm]]
        summary["process"][arm] = {"us_min": min(us), "us_median": statistics.median(us), "us_max": max(us),
                                   "spread": spread(us)}
        s = summary["process"][arm]
        print(f"{arm}: one process's time, {args.processes} processes: {s['us_min']:.0f}-{s['us_max']:.0f} us "
              f"(max/min {s['spread']:.2f})")
    for arm in isolations:
        speedups = [v["speedup"] for v in verdicts[arm]]
        logs = [math.log(x) for x in speedups]
        summary["verdict"][arm] = {
            "speedup_geomean": math.exp(statistics.mean(logs)),
            "speedup_geomean_se": math.exp(statistics.mean(logs)) * statistics.stdev(logs) / math.sqrt(len(logs)),
            "speedup_median": statistics.median(speedups), "speedup_min": min(speedups),
            "speedup_max": max(speedups), "log_speedup_sd": statistics.pstdev(logs),
            "most_pairs_won": max(v["pairs_won"] for v in verdicts[arm]),
            "false_promotions": sum(v["promoted"] for v in verdicts[arm]),
        }
        s = summary["verdict"][arm]
        print(f"{arm}: identical candidate, {args.verdicts} verdicts: speedup geomean {s['speedup_geomean']:.3f} "
              f"(+-{s['speedup_geomean_se']:.3f}), {s['speedup_min']:.2f}-{s['speedup_max']:.2f}x, most pairs won "
              f"{s['most_pairs_won']}, promoted {s['false_promotions']}")
    record.save("verifier_aa", rows + [{"summary": summary}],
                f"eager x*sigmoid(1.702x) 256x1024 fp32 on the cpu; processes: {args.processes} fresh processes "
                f"per arm (adaptive/fixed malloc thresholds), each from a random heap history, 30 sets x 10 repeats "
                f"each, median per call; verdicts: {args.verdicts} per arm (alone: every other process stopped "
                f"while one is timed; lopsided: only the candidate, only while another is timed; both on 1 torch "
                f"thread per process; alone-all-threads: alone on torch's default, {os.cpu_count()} threads), the "
                f"real verifier (default Limits, fixed malloc thresholds) on a candidate identical to the custom op's eager "
                f"baseline; arms alternate run by run, their order too")


if __name__ == "__main__":
    main()
