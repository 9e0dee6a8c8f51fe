"""What audit + outcome publishing costs the gateway, measured as cleanly as 2 cores allow.

Three gateways front the same instant backend (nginx answering a fixed chat completion, as in
peer_overhead.py: a Python backend would share CPU 1 with the load generator and NATS and cap the
saturated cells below the gateway's own limit), all following the fleet over NATS:
- `audit`: publishes a RequestAudited and a RequestOutcome per request (the default);
- `off`: TMX_GATEWAY_PUBLISH_EVENTS=false, publishes nothing; the goal (audit costs < 5% of throughput) is
  `audit` against this;
- `no_nats`: no NATS at all (no fleet feed either), for context.
The gateways are pinned to CPU 0; the load generator, nginx, NATS and the services that consume the
events to CPU 1. Each round drives the arms three ways, the arm order rotating per round:
- saturated together: `audit` and `off` each driven by its own wrk (C, one thread, 64 connections) at the same
  time, so the two share CPU 0 at 100% and each one's requests/s is what its CPU per request allows: the
  throughput the goal names, compared at the same moment (this machine's speed drifts by 10-40% within
  minutes, so cells run one after another compare the drift, not the arms). The gateways' CPU shares are
  recorded to show the core, not the load generators, was the bottleneck;
- paced at the same rate (`--rate`, below every arm's capacity): the gateway's CPU time per request, the
  measure of what publishing costs the gateway itself. Its capacity on one core is 1 / that;
- paired: `audit` and `off` paced at the same time, half the rate each, so both see the same moment of a
  shared machine, at a load where batches of events are small (the per-pass cost weighs most).
- one at a time at one connection (wrk -c1, `--tail-seconds`): the latency a lone client sees, p50 and p99. A
  publish pass runs on the gateway's event loop; a pass that held it (packing a few hundred events took 2-3 ms)
  showed up here as audit's p99 against off's.
The per-round ratios are reported with their median.
Run: `python bench/audit_cost.py [--rounds 21] [--seconds 5] [--rate 800]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_throughput import drive  # noqa: E402
from peer_overhead import require_tools, start_nginx, wrk  # noqa: E402
from proc_cpu import cpu_seconds  # noqa: E402
from record import save  # noqa: E402

from tmx_cli.stack import Stack, StackConfig  # noqa: E402
from tmx_config import BackendSpec, FleetFile  # noqa: E402
from tmx_config.fleet import dump_fleet  # noqa: E402

MODEL = "json-model"  # what nginx answers for (peer_overhead.start_nginx)


def cpu_us_per_request(pid: int, before: float, result: dict) -> float:
    """The gateway's CPU time since `before` per request the load generator sent (3 of them warm-up)."""
    return (cpu_seconds(pid) - before) / max(result["requests"] + 3, 1) * 1e6


def measured(pid: int, url: str, concurrency: int, seconds: float, rate: float = 0.0) -> dict:
    before = cpu_seconds(pid)
    result = asyncio.run(drive(url, concurrency, seconds, False, rate, MODEL))
    result["gateway_cpu_us_per_request"] = cpu_us_per_request(pid, before, result)
    return result


def saturated_together(pids: dict, urls: dict, arms: list[str], connections: int, seconds: float) -> dict[str, dict]:
    """One wrk per arm, all at once, each at `connections` for `seconds`: the gateways share one saturated core, so
    each one's requests/s is what its CPU per request allows; and each gateway's CPU utilisation meanwhile (the
    shares add up to 1.0 when the core was the bottleneck)."""
    before, started = {arm: cpu_seconds(pids[arm]) for arm in arms}, time.monotonic()
    with ThreadPoolExecutor(len(arms)) as pool:
        results = dict(zip(arms, pool.map(lambda arm: wrk(urls[arm], MODEL, False, connections, seconds), arms)))
    elapsed = time.monotonic() - started
    for arm, result in results.items():
        result["gateway_utilisation"] = (cpu_seconds(pids[arm]) - before[arm]) / elapsed
    return results


def measured_together(pids: dict, urls: dict, arms: list[str], concurrency: int, seconds: float,
                      rate: float) -> dict[str, dict]:
    """The arms driven at once, each paced at `rate`, each gateway's CPU time per request."""
    before = {arm: cpu_seconds(pids[arm]) for arm in arms}

    async def together():
        return await asyncio.gather(*(drive(urls[arm], concurrency, seconds, False, rate, MODEL) for arm in arms))

    results = dict(zip(arms, asyncio.run(together())))
    for arm, result in results.items():
        result["gateway_cpu_us_per_request"] = cpu_us_per_request(pids[arm], before[arm], result)
    return results


def pin(pid: int, cpus: set[int]) -> None:
    try:
        os.sched_setaffinity(pid, cpus)
    except (AttributeError, OSError):
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the paced cells")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=800.0)
    parser.add_argument("--saturated-seconds", type=float, default=5.0, help="length of the wrk cells")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections in the saturated cells")
    parser.add_argument("--tail-seconds", type=float, default=5.0, help="length of the one-connection cells")
    args = parser.parse_args()
    require_tools()
    two_cores = (os.cpu_count() or 1) >= 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        backend, backend_urls = start_nginx(root)
        fleet = root / "fleet.yaml"
        dump_fleet(FleetFile(backends=(BackendSpec(id="nginx", url=backend_urls["json"], models=(MODEL,)),)), fleet)
        stack = Stack(StackConfig(data_dir=root / "stack", fleet_file=fleet, gateway_port=0, health_port=0,
                                  planner_port=0, registry_port=0, nats_port=0, forge_worker=False))
        try:
            stack.start()
            urls = {"audit": stack.urls["gateway"],
                    "off": stack.add_gateway("gw-off", TMX_GATEWAY_PUBLISH_EVENTS="false"),
                    "no_nats": stack.add_gateway("gw-no-nats", TMX_GATEWAY_NATS_URL="")}
            pids = {"audit": stack.child("gateway").proc.pid, "off": stack.child("gw-off").proc.pid,
                    "no_nats": stack.child("gw-no-nats").proc.pid}
            if two_cores:
                for child in stack.children:
                    pin(child.proc.pid, {0} if child.name.startswith("gw") or child.name == "gateway" else {1})
                pin(backend.pid, {1})
                pin(0, {1})
            arms = list(urls)
            rows = []
            for round_ in range(1, args.rounds + 1):
                order = arms[round_ % 3:] + arms[:round_ % 3]
                cells = saturated_together(pids, urls, ["audit", "off"], args.connections, args.saturated_seconds)
                paced = {arm: measured(pids[arm], urls[arm], args.concurrency, args.seconds, args.rate)
                         for arm in order}
                paired = measured_together(pids, urls, ["audit", "off"], args.concurrency, args.seconds, args.rate / 2)
                alone = {arm: wrk(urls[arm], MODEL, False, 1, args.tail_seconds) for arm in order}
                row = {"round": round_, "order": order,
                       "errors": sum(c["errors"] for c in [*paced.values(), *paired.values()]) +
                                 sum(c["non_2xx"] + bool(c["socket_errors"]) for c in [*cells.values(), *alone.values()])}
                for arm, result in cells.items():
                    row[f"{arm}_rps"], row[f"{arm}_p50_ms"] = result["rps"], result["p50_ms"]
                    row[f"{arm}_utilisation"] = result["gateway_utilisation"]
                for arm in arms:
                    row[f"{arm}_paced_rps"] = paced[arm]["rps"]
                    row[f"{arm}_paced_cpu_us"] = paced[arm]["gateway_cpu_us_per_request"]
                    row[f"{arm}_c1_p50_ms"], row[f"{arm}_c1_p99_ms"] = alone[arm]["p50_ms"], alone[arm]["p99_ms"]
                row["rps_ratio_audit_vs_off"] = row["audit_rps"] / row["off_rps"]
                row["paced_cpu_ratio_audit_vs_off"] = row["audit_paced_cpu_us"] / row["off_paced_cpu_us"]
                for arm, result in paired.items():
                    row[f"{arm}_paired_cpu_us"] = result["gateway_cpu_us_per_request"]
                    row[f"{arm}_paired_rps"] = result["rps"]
                row["paired_cpu_ratio_audit_vs_off"] = row["audit_paired_cpu_us"] / row["off_paired_cpu_us"]
                rows.append(row)
                cols = [f"{arm} {row[arm + '_paced_cpu_us']:4.0f} us CPU/req at {row[arm + '_paced_rps']:4.0f} req/s"
                        for arm in arms]
                print(f"round {round_}: saturated together: audit {row['audit_rps']:5.0f}, off {row['off_rps']:5.0f}"
                      f" req/s | paced: " + " | ".join(cols) + f" | paired: audit {row['audit_paired_cpu_us']:4.0f}"
                      f" us, off {row['off_paired_cpu_us']:4.0f} us CPU/req | one connection p50/p99: " +
                      ", ".join(f"{arm} {row[arm + '_c1_p50_ms']:.2f}/{row[arm + '_c1_p99_ms']:.2f} ms" for arm in arms),
                      flush=True)
        finally:
            stack.stop()
            backend.terminate()
            backend.wait(10)
    med = {key: statistics.median(r[key] for r in rows) for key in rows[0]
           if key.endswith(("_rps", "_cpu_us", "_utilisation", "_ms"))}
    rps_ratio = statistics.median(r["rps_ratio_audit_vs_off"] for r in rows)
    cpu_ratio = statistics.median(r["paced_cpu_ratio_audit_vs_off"] for r in rows)
    per_round = ", ".join(f"{r['rps_ratio_audit_vs_off']:.3f}" for r in rows)
    print(f"saturated together (one wrk each, {args.connections} connections), median req/s: audit "
          f"{med['audit_rps']:.0f}, off {med['off_rps']:.0f} (share of the core {med['audit_utilisation']:.2f} / "
          f"{med['off_utilisation']:.2f}) -> audit costs {100 * (1 - rps_ratio):.1f}% of throughput (median of per-round "
          f"ratios {per_round})")
    print(f"paced at {args.rate:.0f} req/s, median gateway CPU per request: audit {med['audit_paced_cpu_us']:.0f} us, "
          f"off {med['off_paced_cpu_us']:.0f} us, no NATS {med['no_nats_paced_cpu_us']:.0f} us")
    per_round = ", ".join(f"{r['paced_cpu_ratio_audit_vs_off']:.3f}" for r in rows)
    print(f"paced one after another: audit costs the gateway {100 * (cpu_ratio - 1):.1f}% more CPU per request "
          f"(median of per-round ratios {per_round})")
    paired_ratio = statistics.median(r["paired_cpu_ratio_audit_vs_off"] for r in rows)
    per_round = ", ".join(f"{r['paired_cpu_ratio_audit_vs_off']:.3f}" for r in rows)
    print(f"paired at {args.rate / 2:.0f} req/s each: audit {med['audit_paired_cpu_us']:.0f} us, off "
          f"{med['off_paired_cpu_us']:.0f} us CPU per request -> audit publishing costs the gateway "
          f"{100 * (paired_ratio - 1):.1f}% more CPU per request, i.e. {100 * (1 - 1 / paired_ratio):.1f}% of its "
          f"one-core capacity (median of per-round ratios {per_round})")
    print("one connection, median p50 / p99: " + ", ".join(
        f"{arm} {med[arm + '_c1_p50_ms']:.2f} / {med[arm + '_c1_p99_ms']:.2f} ms" for arm in arms))
    save("audit_cost", rows + [{**{f"median_{k}": v for k, v in med.items()},
                                "median_rps_ratio_audit_vs_off": rps_ratio, "rps_cost_pct": 100 * (1 - rps_ratio),
                                "median_paced_cpu_ratio_audit_vs_off": cpu_ratio,
                                "paced_capacity_cost_pct": 100 * (1 - 1 / cpu_ratio),
                                "median_paired_cpu_ratio_audit_vs_off": paired_ratio,
                                "paired_capacity_cost_pct": 100 * (1 - 1 / paired_ratio)}],
         f"instant nginx backend; gateways pinned to CPU 0, load generator + nginx + NATS + consumers to CPU 1 "
         f"({'pinned' if two_cores else 'not pinned'}); non-streaming; saturated cell: audit and off at once, one "
         f"wrk -t1 -c{args.connections} each for {args.saturated_seconds}s; paced cells: concurrency {args.concurrency}, "
         f"{args.seconds}s per paced cell at {args.rate:.0f} req/s, "
         f"{args.seconds}s paired cell (audit and off at once, {args.rate / 2:.0f} req/s each), "
         f"{args.rounds} interleaved rounds, arm order rotating; one-connection cells: wrk -t1 -c1 for "
         f"{args.tail_seconds}s, each arm alone")

if __name__ == "__main__":
    main()
