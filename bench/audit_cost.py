"""What audit + outcome publishing costs the gateway, measured as cleanly as 2 cores allow.

Two gateways front the same instant engine-sim: one publishes a RequestAudited and a RequestOutcome per
request to NATS, the other publishes nothing. Both gateways are pinned to CPU 0; the load generator,
engine-sim and NATS to CPU 1, so each gateway's throughput is bounded by its own CPU cost. The two are
driven in interleaved rounds (A B A B ...) at the same concurrency and the medians compared.
Run: `python bench/audit_cost.py [--rounds 5] [--seconds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_throughput import drive  # noqa: E402
from record import save  # noqa: E402

from tmx_cli.stack import Stack, StackConfig  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, url: str, concurrency: int, seconds: float) -> dict:
    before = cpu_seconds(pid)
    result = asyncio.run(drive(url, concurrency, seconds, False))
    result["gateway_cpu_us_per_request"] = (cpu_seconds(pid) - before) / max(result["requests"] + 3, 1) * 1e6
    return result


def pin(pid: int, cpus: set[int]) -> None:
    try:
        os.sched_setaffinity(pid, cpus)
    except (AttributeError, OSError):
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    two_cores = (os.cpu_count() or 1) >= 2
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(StackConfig(data_dir=Path(tmp), engine_sims=1, gateway_port=0, health_port=0, planner_port=0,
                                  registry_port=0, nats_port=0, sim_base_port=0, sim_time_scale=0.0,
                                  forge_worker=False))
        stack.start()
        try:
            quiet = stack.add_gateway("gw-quiet", TMX_GATEWAY_NATS_URL="")
            if two_cores:
                for child in stack.children:
                    pin(child.proc.pid, {0} if child.name.startswith("gw") or child.name == "gateway" else {1})
                pin(0, {1})
            rows = []
            audited_pid, quiet_pid = stack.child("gateway").proc.pid, stack.child("gw-quiet").proc.pid
            for round_ in range(1, args.rounds + 1):
                audited = measured(audited_pid, stack.urls["gateway"], args.concurrency, args.seconds)
                silent = measured(quiet_pid, quiet, args.concurrency, args.seconds)
                rows.append({"round": round_, "audit_rps": audited["rps"], "no_audit_rps": silent["rps"],
                             "audit_p50_ms": audited["p50_ms"], "no_audit_p50_ms": silent["p50_ms"],
                             "audit_cpu_us": audited["gateway_cpu_us_per_request"],
                             "no_audit_cpu_us": silent["gateway_cpu_us_per_request"],
                             "errors": audited["errors"] + silent["errors"]})
                print(f"round {round_}: audit {audited['rps']:7.0f} req/s {rows[-1]['audit_cpu_us']:6.0f} us CPU/req"
                      f" | no audit {silent['rps']:7.0f} req/s {rows[-1]['no_audit_cpu_us']:6.0f} us CPU/req")
        finally:
            stack.stop()
    a = statistics.median(r["audit_rps"] for r in rows)
    b = statistics.median(r["no_audit_rps"] for r in rows)
    ratios = sorted(r["audit_rps"] / r["no_audit_rps"] for r in rows)
    ca = statistics.median(r["audit_cpu_us"] for r in rows)
    cb = statistics.median(r["no_audit_cpu_us"] for r in rows)
    print(f"median: audit {a:.0f} req/s, no audit {b:.0f} req/s -> {100 * (1 - a / b):.1f}% fewer req/s "
          f"(per-round ratios {', '.join(f'{x:.3f}' for x in ratios)})")
    print(f"gateway CPU per request: audit {ca:.0f} us, no audit {cb:.0f} us -> audit costs {100 * (ca / cb - 1):.1f}% "
          "of the gateway's CPU")
    save("audit_cost", rows + [{"median_audit_rps": a, "median_no_audit_rps": b, "rps_cost_pct": 100 * (1 - a / b),
                                "median_audit_cpu_us": ca, "median_no_audit_cpu_us": cb,
                                "cpu_cost_pct": 100 * (ca / cb - 1)}],
         f"gateways pinned to CPU 0, load generator + engine-sim + NATS to CPU 1 ({'pinned' if two_cores else 'not pinned'});"
         f" concurrency {args.concurrency}, non-streaming, {args.seconds}s per cell, interleaved rounds")


if __name__ == "__main__":
    main()
