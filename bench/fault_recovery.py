"""Failure detection and event delivery on the process stack (4 engine-sims, probes every 1 s, fall 3,
rise 2 — the shipped defaults), side by side:

- passive ejection: an engine is SIGKILLed under load; time until the health service publishes it
  UNHEALTHY (driven by the gateways' failed-attempt outcomes) and until the gateway stops sending to it;
- active ejection: an engine is killed with no traffic; time until probes alone mark it UNHEALTHY;
- recovery: the engine restarts; time until HEALTHY (through RECOVERING);
- event delivery: gateway -> NATS -> subscriber latency of RequestAudited events, p50/p99, from the time
  the request finished, for 300 back-to-back requests: an event waits for the next publish pass, at most
  EVENT_LINGER_MS (200 ms) after the last one, so delivery is about half of that on average (a failure waits
  at most EVENT_URGENT_LINGER_MS, 10 ms, which is what makes passive ejection quick; see audit_cost.py).
Run: `python bench/fault_recovery.py`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import save  # noqa: E402

from tensormux.events.v1 import events_pb2  # noqa: E402
from tmx_cli.stack import SIM_MODEL, Stack, StackConfig  # noqa: E402
from tmx_eventbus import EventBus, decode, decode_all, subjects  # noqa: E402

BODY = json.dumps({"model": SIM_MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}).encode()


def call(url: str) -> str:
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=BODY,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        resp.read()
        return resp.headers["x-tmx-backend"]


async def watch_health(nats_url: str, sink: list) -> EventBus:
    bus = await EventBus.connect(nats_url, name="bench")

    async def on_msg(msg):
        sink.append((time.monotonic(), decode(msg.data, msg.headers)))

    await bus.nc.subscribe(subjects.ALL_HEALTH, cb=on_msg)
    return bus


def fleet(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/admin/backends", timeout=5) as resp:
        return json.load(resp)["backends"]


def first(events, backend, state, after):
    for at, e in list(events):
        if at >= after and e.backend_id == backend and e.current == state:
            return at
    return None


def wait_for(fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.005)
    raise TimeoutError


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(StackConfig(data_dir=Path(tmp), gateway_port=0, health_port=0, planner_port=0, registry_port=0,
                                  nats_port=0, sim_base_port=0, sim_time_scale=0.05, forge_worker=False))
        stack.start()
        gw = stack.urls["gateway"]
        events: list = []
        bus = await watch_health(stack.urls["nats"], events)
        rows = {}
        try:
            await asyncio.to_thread(wait_for, lambda: all(b["state"] == "healthy" for b in fleet(gw)))
            # passive: under load
            served: list[tuple[float, str]] = []
            stop = threading.Event()

            def load():
                while not stop.is_set():
                    served.append((time.monotonic(), call(gw)))

            threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
            for t in threads:
                t.start()
            await asyncio.to_thread(wait_for, lambda: len(served) >= 100)
            killed = time.monotonic()
            stack.kill_child("sim-3")
            down = await asyncio.to_thread(wait_for, lambda: first(events, "sim-3", events_pb2.BACKEND_STATE_UNHEALTHY,
                                                                   killed))
            await asyncio.to_thread(wait_for, lambda: served and served[-1][0] > down + 1.0)
            stop.set()
            for t in threads:
                t.join(10)
            last_to_dead = max((at for at, b in served if b == "sim-3"), default=killed)
            rows["passive_unhealthy_event_s"] = down - killed
            rows["gateway_last_request_to_dead_engine_s"] = max(0.0, last_to_dead - killed)
            # recovery
            restarted = time.monotonic()
            stack.restart_child("sim-3")
            healthy = await asyncio.to_thread(wait_for, lambda: first(events, "sim-3", events_pb2.BACKEND_STATE_HEALTHY,
                                                                      restarted))
            rows["recovery_to_healthy_s"] = healthy - restarted
            # active: no traffic
            killed = time.monotonic()
            stack.kill_child("sim-4")
            down = await asyncio.to_thread(wait_for, lambda: first(events, "sim-4", events_pb2.BACKEND_STATE_UNHEALTHY,
                                                                   killed))
            rows["active_unhealthy_event_s"] = down - killed
            # event delivery latency
            delays: list[float] = []

            async def on_audit(msg):  # the gateway packs a publish pass's events into one message
                now_ms = time.time() * 1000
                delays.extend(now_ms - event.occurred_at_unix_ms for event in decode_all(msg.data, msg.headers))

            sub = await bus.nc.subscribe(subjects.ALL_AUDIT, cb=on_audit)
            for _ in range(300):
                await asyncio.to_thread(call, gw)
            await asyncio.to_thread(wait_for, lambda: len(delays) >= 300)
            await sub.unsubscribe()
            delays.sort()
            rows["audit_delivery_p50_ms"] = statistics.median(delays)
            rows["audit_delivery_p99_ms"] = delays[int(0.99 * len(delays)) - 1]
        finally:
            await bus.close()
            stack.stop()
    for name, value in rows.items():
        print(f"{name:40} {value:8.3f}")
    save("fault_recovery", [rows], "4 engine-sims, probe interval 1 s, fall 3, rise 2 (defaults); 4 client threads")


if __name__ == "__main__":
    asyncio.run(main())
