"""Time from `tmx up` to every service ready (NATS, 4 engine-sims, registry, health, planner, forge worker,
gateway), as the embedded default starts it. Run: `python bench/stack_start.py [--runs 3]`."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import save  # noqa: E402

from tmx_cli.stack import Stack, StackConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            stack = Stack(StackConfig(data_dir=Path(tmp), gateway_port=0, health_port=0, planner_port=0,
                                      registry_port=0, nats_port=0, sim_base_port=0))
            started = time.perf_counter()
            stack.start()
            times.append(time.perf_counter() - started)
            stack.stop()
    print("start times (s):", ", ".join(f"{t:.2f}" for t in times), f"median {statistics.median(times):.2f}")
    save("stack_start", [{"run": i + 1, "seconds": t} for i, t in enumerate(times)],
         f"median {statistics.median(times):.2f}s to all services ready (embedded NATS, SQLite, 4 engine-sims)")


if __name__ == "__main__":
    main()
