"""Forge verifier cost and jobs per hour on the cpu target.

Runs the real verifier (sandboxed processes, eager + torch.compile baselines) on:
- each honest and cheating candidate of the test suite (rmsnorm, 16x64 and 8x64 fp32): seconds per verdict;
- one cpu job as a worker runs it: the inductor generator's candidates for fused residual-add + RMSNorm at
  2048x4096 and 4096x4096 fp32, against the better of eager and torch.compile, with the promotion decision.
Jobs per hour = 3600 / seconds per job.

    python bench/forge_verifier.py [--job-candidates 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job-candidates", type=int, default=2)
    args = parser.parse_args()
    import record
    from tmx_forge.domain.candidates import Candidate, inductor_candidates
    from tmx_forge.domain.promotion import decide, geomean
    from tmx_forge.verifier import Limits, Verifier

    rows = []
    suite = sorted((ROOT / "services" / "forge-worker" / "tests" / "candidates").glob("*.py"))
    limits = Limits(wall_s=120, repeats=7, compile_baseline=False)
    for path in suite:
        if path.stem == "cheat_never_terminates":
            continue  # costs exactly its wall limit
        start = time.perf_counter()
        verdict = Verifier("rmsnorm", "float32", "cpu", [[16, 64], [8, 64]], limits).verify(
            Candidate(path.read_text(), label=path.stem))
        seconds = time.perf_counter() - start
        speedup = geomean(verdict.speedups) if verdict.benchmarked else None
        rows.append({"kind": "candidate", "name": path.stem, "ok": verdict.ok, "reason_code": verdict.reason_code,
                     "seconds": round(seconds, 2), "geomean_speedup": speedup})
        print(f"{path.stem:32} {verdict.reason_code:22} {seconds:6.2f} s"
              + (f"  {speedup:.3g}x vs eager" if speedup else ""))
    job_start = time.perf_counter()
    verifier = Verifier("fused_add_rmsnorm", "float32", "cpu", [[2048, 4096], [4096, 4096]],
                        Limits(wall_s=600, repeats=7, compile_baseline=True))
    for candidate in inductor_candidates("fused_add_rmsnorm", args.job_candidates):
        start = time.perf_counter()
        verdict = verifier.verify(candidate)
        seconds = time.perf_counter() - start
        decision = decide(verdict.speedups, wins=verdict.wins) if verdict.benchmarked else None
        rows.append({"kind": "job-candidate", "name": candidate.label, "ok": verdict.ok,
                     "reason_code": verdict.reason_code, "seconds": round(seconds, 2), "shapes": verdict.shapes,
                     "geomean_speedup": decision.geomean if decision else None,
                     "promote": decision.promote if decision else False})
        print(f"{candidate.label:40} {verdict.reason_code:10} {seconds:6.1f} s "
              f"{decision.reason if decision else verdict.reason}")
    job_s = time.perf_counter() - job_start
    rows.append({"kind": "job", "name": "fused_add_rmsnorm inductor cpu", "seconds": round(job_s, 1),
                 "jobs_per_hour": round(3600 / job_s, 1)})
    print(f"one job: {job_s:.1f} s -> {3600 / job_s:.1f} jobs/hour on this machine")
    print(record.save("forge_verifier", rows, notes="cpu target; candidates in their own sandboxed processes"))


if __name__ == "__main__":
    main()
