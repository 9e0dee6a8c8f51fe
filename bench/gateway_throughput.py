"""Gateway requests/s and added latency against engine-sim, side by side with calling engine-sim directly.

Starts NATS (embedded), one engine-sim replica in "instant" mode (time scale 0: no simulated GPU time, so
what is left is HTTP and Python cost) and the gateway with audit and outcome publishing on, each as its own
process; then drives both targets with the same closed-loop aiohttp load generator at 1 and 64 concurrent
connections, non-streaming and streaming. Run: `python bench/gateway_throughput.py [--seconds 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import save  # noqa: E402

from tmx_cli.stack import Stack, StackConfig  # noqa: E402

MODEL = "tmx-sim-llama"


async def drive(url: str, concurrency: int, seconds: float, stream: bool, rate: float = 0.0,
                model: str = MODEL) -> dict:
    """Closed-loop load from `concurrency` connections; with `rate`, request starts are paced to that many per
    second in total (a worker that falls behind sends at once), so two targets can be compared at equal load."""
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 4, "stream": stream}
    latencies: list[float] = []
    errors = 0
    slots = iter(range(1 << 62))
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                if rate:
                    delay = started + next(slots) / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                start = time.perf_counter()
                try:
                    async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        for _ in range(3):  # warm-up: connections, imports, caches
            async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
                await resp.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50_ms": statistics.median(latencies) * 1000, "p99_ms": pick(0.99)}


def start(data: Path, events: bool) -> Stack:
    stack = Stack(StackConfig(data_dir=data, engine_sims=1, gateway_port=0, health_port=0, planner_port=0,
                              registry_port=0, nats_port=0, sim_base_port=0, sim_time_scale=0.0,
                              forge_worker=False, gateway_events=events))
    stack.start()
    return stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for events in (True, False):
            stack = start(Path(tmp) / f"events-{events}", events)
            try:
                sim_url = f"http://127.0.0.1:{stack.sim_ports[0]}"
                for stream in (False, True):
                    for concurrency in (1, 64):
                        direct = asyncio.run(drive(sim_url, concurrency, args.seconds, stream))
                        via = asyncio.run(drive(stack.urls["gateway"], concurrency, args.seconds, stream))
                        row = {"audit_events": events, "stream": stream, "concurrency": concurrency,
                               "direct": direct, "gateway": via, "rps_ratio": via["rps"] / direct["rps"],
                               "added_p50_ms": via["p50_ms"] - direct["p50_ms"],
                               "added_p99_ms": via["p99_ms"] - direct["p99_ms"]}
                        rows.append(row)
                        print(f"events={events!s:5} stream={stream!s:5} c={concurrency:<3} direct "
                              f"{direct['rps']:6.0f} req/s p50 {direct['p50_ms']:6.2f} ms | gateway {via['rps']:6.0f}"
                              f" req/s p50 {via['p50_ms']:6.2f} ms p99 {via['p99_ms']:6.2f} ms | ratio "
                              f"{row['rps_ratio']:.2f} added p50 {row['added_p50_ms']:+.2f} ms "
                              f"errors {direct['errors']}/{via['errors']}")
            finally:
                stack.stop()
    path = save("gateway_throughput", rows, "engine-sim time_scale=0, max_tokens=4; gateway with and without NATS "
                "audit + outcome publishing; load generator, gateway, NATS and engine-sim share the machine's cores")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
