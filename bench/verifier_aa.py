"""A/A test of the forge verifier's timing: the same code on both sides must not look faster.

Two parts, each run side by side with glibc's allocator thresholds left to adapt (`adaptive`, as before
verifier.MALLOC_ENV) and fixed (`fixed`, what the verifier now gives every timed process):
- processes: the same eager op (x * sigmoid(1.702 x), 256x1024 fp32) timed in fresh processes, one after
  another, each starting from a random heap history (a few buffers of 64 KiB to 4 MiB, half of them freed),
  as a candidate's imports and set-up differ from a baseline's: how far one process's time is from the next's;
- verdicts: the real verifier on a candidate identical to a custom op's eager baseline (the e2e test's
  quick_gelu): per verdict the speedup, the interleaved pairs the candidate won and whether the promotion
  rule would promote it (it never should).
The arms alternate run by run, so both see the same moments of a shared machine.

    python bench/verifier_aa.py [--processes 16] [--verdicts 10]
"""

from __future__ import annotations

import argparse
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


def one_verdict(fixed: bool) -> dict:
    from tmx_forge import verifier as verifier_module
    from tmx_forge.domain.candidates import Candidate
    from tmx_forge.domain.promotion import decide

    saved = dict(verifier_module.MALLOC_ENV)
    if not fixed:
        verifier_module.MALLOC_ENV.clear()
    try:
        v = verifier_module.Verifier("quick_gelu", "float32", "cpu", [[256, 1024]], reference_source=REFERENCE)
        try:
            verdict = v.verify(Candidate(CANDIDATE))
        finally:
            v.close()
    finally:
        verifier_module.MALLOC_ENV.update(saved)
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
    verdicts: dict[str, list[dict]] = {arm: [] for arm in arms}
    for i in range(args.verdicts):
        for arm, fixed in arms.items():
            v = one_verdict(fixed)
            verdicts[arm].append(v)
            rows.append({"part": "verdict", "arm": arm, "run": i, **v})
        print(f"verdict {i}: " + ", ".join(
            f"{arm} {verdicts[arm][-1]['speedup']:.2f}x ({verdicts[arm][-1]['pairs_won']}/{verdicts[arm][-1]['pairs']}"
            f" pairs)" for arm in arms), flush=True)
    summary = {}
    for arm in arms:
        us = [t * 1e6 for t in times[arm]]
        speedups = [v["speedup"] for v in verdicts[arm]]
        summary[arm] = {
            "process_us_min": min(us), "process_us_median": statistics.median(us), "process_us_max": max(us),
            "process_spread": spread(us),
            "verdict_speedup_min": min(speedups), "verdict_speedup_max": max(speedups),
            "verdict_log_speedup_sd": statistics.pstdev(math.log(s) for s in speedups),
            "verdict_most_pairs_won": max(v["pairs_won"] for v in verdicts[arm]),
            "false_promotions": sum(v["promoted"] for v in verdicts[arm]),
        }
        s = summary[arm]
        print(f"{arm}: one process's time, {args.processes} processes: {s['process_us_min']:.0f}-"
              f"{s['process_us_max']:.0f} us (max/min {s['process_spread']:.2f}); identical candidate, "
              f"{args.verdicts} verdicts: speedup {s['verdict_speedup_min']:.2f}-{s['verdict_speedup_max']:.2f}x "
              f"(sd of log {s['verdict_log_speedup_sd']:.3f}), most pairs won {s['verdict_most_pairs_won']}, "
              f"promoted {s['false_promotions']}")
    record.save("verifier_aa", rows + [{"summary": summary}],
                f"eager x*sigmoid(1.702x) 256x1024 fp32 on the cpu; processes: {args.processes} fresh processes "
                f"per arm, each from a random heap history, 30 sets x 10 repeats each, median per call; verdicts: "
                f"{args.verdicts} per arm, the real verifier (default Limits) on a candidate identical to the custom "
                f"op's eager baseline; arms alternate run by run")


if __name__ == "__main__":
    main()
