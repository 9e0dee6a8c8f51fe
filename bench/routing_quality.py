"""Routing quality: the same arrival trace replayed against each strategy on 4 engine-sims.

Workloads (prompts sized for a 2-core machine; the simulator's timing is what matters):
  uniform   distinct ~1000-token prompts, nothing to exploit: every strategy should hold
  shared    16 tenants' long system prompts (~900 tokens) with short questions
  multiturn 24 conversations that grow turn by turn (session key = conversation)
Poisson arrivals (seeded), open loop, streamed, `stream_options.include_usage`; every run salts its prompts
so no engine cache carries over between strategies. The same traces also go through vllm-router (its own
venv under bench/.venvs, created on first use) in front of the same engine-sims, with its `cache_aware` and
`round_robin` policies. Reports TTFT p50/p95/p99, output tokens/s, prefix-cache hit rate (engine-reported
cached / prompt tokens) and hot-spot ratio (busiest backend's share of the requests / fair share, counted by
the engines themselves).
With `--gateways 1,2,2-alone` the strategies also run through a gateway of two worker processes that share their
routing view over NATS, and through one whose workers each route alone (labels `<strategy>@2w`, `@2-alonew`);
`2-replicas` runs two separate gateways in one peer group, the requests alternating between them as behind a
load balancer, and `2-replicas-alone` two that do not share (labels `@2-replicas`, `@2-replicas-alone`);
`fixed-costs` a gateway that prices every backend at the reference engine costs instead of learning each one's
(label `@fixed-costs`), for a fleet of unlike replicas (`--sim-profiles 8000:6,8000:6,2000:12,2000:12`);
`2-own-costs` a gateway of two workers that share their load and prefixes but each fit the backends' engine costs
from their own answers alone (label `@2-own-costs`; against `2`, what sharing the cost observations buys);
`budget-prefixes` one that does not learn how much each engine's cache keeps, and trusts its index's budget (label
`@budget-prefixes`; `--tenants 64 --kv-blocks 640` makes the shared prefixes outgrow the caches).
Tensormux's rows also count how many of prefix_aware's predicted hits the engines' usage confirmed
(`predicted_hits`, `predicted_hits_true`, from the gateway's `tmx_gateway_prefix_predictions_total`).
Run: `python bench/routing_quality.py [--requests 160] [--rate 14] [--router-policies cache_aware,round_robin]
[--gateways 1,2,2-alone,2-replicas,2-replicas-alone]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_counters import prefix_counters  # noqa: E402
from peer_overhead import ensure_venv, wait_http  # noqa: E402
from record import save  # noqa: E402

from tmx_cli.ports import free_port  # noqa: E402
from tmx_cli.stack import SIM_MODEL, Stack, StackConfig  # noqa: E402

STRATEGIES = ["random", "weighted_round_robin", "least_inflight", "token_aware", "ewma_latency",
              "session_affinity", "prefix_aware", "multi"]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def trace(workload: str, n: int, salt: str, seed: int = 7, tenants: int = 16,
          system_words: int = 850) -> list[tuple[list[dict], str]]:
    """(messages, session key) per request, in arrival order."""
    rng = random.Random(seed)
    out = []
    if workload == "uniform":
        for i in range(n):
            out.append(([{"role": "user", "content": f"{salt} {i} " + words(rng, 900)}], f"u{i}"))
    elif workload == "shared":
        systems = [f"{salt} tenant {g} policy: " + words(random.Random(g), system_words) for g in range(tenants)]
        for i in range(n):
            g = rng.randrange(tenants)
            out.append(([{"role": "system", "content": systems[g]},
                         {"role": "user", "content": words(rng, 12)}], f"t{g}"))
    else:
        history: dict[int, list[dict]] = {}
        for _ in range(n):
            c = rng.randrange(24)
            messages = history.setdefault(c, [{"role": "system", "content": f"{salt} conversation {c}: " +
                                               words(random.Random(100 + c), 300)}])
            messages.append({"role": "user", "content": words(rng, 40)})
            out.append((list(messages), f"c{c}"))
            messages.append({"role": "assistant", "content": words(rng, 16)})
    return out


async def one(session, url, strategy, messages, key, max_tokens, stream, results):
    body = {"model": SIM_MODEL, "messages": messages, "max_tokens": max_tokens, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    started = time.perf_counter()
    ttft, usage, backend = None, None, ""
    async with session.post(f"{url}/v1/chat/completions", json=body,
                            headers={"x-tmx-routing": strategy, "x-session-id": key}) as resp:
        backend = resp.headers.get("x-tmx-backend", "")
        if not stream:
            usage = (await resp.json()).get("usage")
        else:
            async for line in resp.content:
                if not line.startswith(b"data: {"):
                    continue
                chunk = json.loads(line[6:])
                if ttft is None and chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
                    ttft = time.perf_counter() - started
                if chunk.get("usage"):
                    usage = chunk["usage"]
    done = time.perf_counter()
    results.append({"ttft": ttft or 0.0, "latency": done - started, "usage": usage or {}, "backend": backend,
                    "done": done})


async def predictions(session, urls: list[str]) -> dict[str, float]:
    """The gateways' prefix-prediction counts (predicted_actual: hit_hit, hit_miss, miss_hit, miss_miss), summed; a
    worker other than the one answering adds its counts up to a second late (TMX_GATEWAY_METRICS_FLUSH_S)."""
    counts: dict[str, float] = {}
    for url in urls:
        async with session.get(f"{url}/metrics") as resp:
            text = await resp.text() if resp.status == 200 else ""
        for name, value in prefix_counters(text).items():
            if name.startswith("predicted_"):
                outcome = name.removeprefix("predicted_")
                counts[outcome] = counts.get(outcome, 0.0) + value
    return counts


async def served(session, sim_ports: list[int]) -> list[float]:
    """Requests each engine has finished (its own e2e-latency histogram count)."""
    counts = []
    for port in sim_ports:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        match = re.search(r"^vllm:e2e_request_latency_seconds_count\{[^}]*\} (\S+)$", text, re.M)
        counts.append(float(match.group(1)) if match else 0.0)
    return counts


@contextmanager
def vllm_router(policy: str, sim_ports: list[int], logs: Path):
    """vllm-router in front of the same engine-sims, with one of its policies."""
    venv = ensure_venv("vllm-router", "vllm-router")
    port = free_port()
    log = open(logs / f"vllm-router-{policy}.log", "ab")
    proc = subprocess.Popen([str(venv / "bin" / "vllm-router"), "--host", "127.0.0.1", "--port", str(port),
                             "--worker-urls", *(f"http://127.0.0.1:{p}" for p in sim_ports), "--policy", policy,
                             "--prometheus-port", str(free_port())], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


async def run(urls: list[str], strategy: str, workload: str, n: int, rate: float, max_tokens: int, tenants: int,
              system_words: int, sim_ports: list[int], stream: bool = True, fresh_connections: bool = False,
              gateway: bool = True) -> dict:
    requests = trace(workload, n, salt=f"{strategy}-{workload}-{time.time_ns()}", tenants=tenants,
                     system_words=system_words)
    arrivals = random.Random(11)
    results: list[dict] = []
    # fresh connections: each request its own, as from many clients, so a gateway's workers share them
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=fresh_connections)) as session:
        before = await served(session, sim_ports)
        predicted_before = await predictions(session, urls) if gateway else {}
        started = time.perf_counter()
        tasks, at = [], 0.0
        for i, (messages, key) in enumerate(requests):
            at += arrivals.expovariate(rate)
            delay = started + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the trace's arrival time (open loop)
            url = urls[i % len(urls)]  # several gateways: in turn, as a load balancer would
            tasks.append(asyncio.create_task(one(session, url, strategy, messages, key, max_tokens, stream, results)))
        await asyncio.gather(*tasks)
        elapsed = max(r["done"] for r in results) - started
        per_backend = [b - a for a, b in zip(before, await served(session, sim_ports))]
        predicted = await predictions(session, urls) if gateway else {}
    if gateway:
        delta = {k: v - predicted_before.get(k, 0.0) for k, v in predicted.items()}
        extra = {"predicted_hits": delta.get("hit_hit", 0.0) + delta.get("hit_miss", 0.0),
                 "predicted_hits_true": delta.get("hit_hit", 0.0)}
    else:
        extra = {}
    def percentiles(name: str, values: list[float]) -> dict:
        values = sorted(v * 1000 for v in values)
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
        return {f"{name}_p50_ms": statistics.median(values), f"{name}_p95_ms": pick(0.95), f"{name}_p99_ms": pick(0.99)}

    prompt = sum(r["usage"].get("prompt_tokens", 0) for r in results)
    cached = sum((r["usage"].get("prompt_tokens_details") or {}).get("cached_tokens", 0) for r in results)
    output = sum(r["usage"].get("completion_tokens", 0) for r in results)
    return {"strategy": strategy, "workload": workload, "requests": len(results), "streamed": stream,
            **(percentiles("ttft", [r["ttft"] for r in results]) if stream else {}),
            **percentiles("latency", [r["latency"] for r in results]),
            "output_tok_s": output / elapsed, "cache_hit_rate": cached / prompt if prompt else 0.0,
            "hot_spot_ratio": max(per_backend) / (sum(per_backend) / len(per_backend)), **extra}


def sim_profiles(spec: str) -> tuple[dict[str, str], ...]:
    """'8000:6,2000:12' -> each engine-sim's prefill rate and base decode step."""
    profiles = []
    for item in filter(None, spec.split(",")):
        prefill, step = item.split(":")
        profiles.append({"TMX_ENGINE_SIM_PREFILL_TOK_S": prefill, "TMX_ENGINE_SIM_BASE_STEP_MS": step})
    return tuple(profiles)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--rate", type=float, default=14.0, help="arrivals per second")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--workloads", default="uniform,shared,multiturn")
    parser.add_argument("--tenants", type=int, default=16, help="shared workload: tenants (system prompts)")
    parser.add_argument("--system-words", type=int, default=850, help="shared workload: system prompt words")
    parser.add_argument("--kv-blocks", type=int, default=1280, help="KV cache blocks (16 tokens) per replica")
    parser.add_argument("--sim-profiles", default="",
                        help="per engine-sim 'prefill_tok_s:base_step_ms' (comma-separated, in order), for a fleet of "
                             "unlike replicas, e.g. 8000:6,8000:6,2000:12,2000:12; empty: all alike (8000:6)")
    parser.add_argument("--time-scale", type=float, default=0.5, help="engine-sim time scale")
    parser.add_argument("--name", default="routing_quality", help="results file name")
    parser.add_argument("--no-stream", action="store_true",
                        help="non-streamed requests: end-to-end latency instead of TTFT (nothing shows prefill ending)")
    parser.add_argument("--router-policies", default="cache_aware,round_robin",
                        help="vllm-router policies to run on the same traces ('' for none)")
    parser.add_argument("--gateways", default="1",
                        help="Tensormux gateways to run the strategies through: 'n' a gateway of n workers sharing "
                             "their routing view over NATS, 'n-alone' one whose workers each route alone, "
                             "'n-replicas' n gateways in one peer group, 'n-replicas-alone' n that do not share, "
                             "'fixed-costs' one that learns no engine costs, 'n-own-costs' n workers that share "
                             "all but their engine-cost observations, 'budget-prefixes' one that does not learn "
                             "how much each engine's cache keeps; e.g. 1,2,2-alone,2-replicas")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # small KV caches (~20k tokens per replica) so where a prefix lives matters, as on a loaded GPU
        stack = Stack(StackConfig(data_dir=Path(tmp), gateway_port=0, health_port=0, planner_port=0, registry_port=0,
                                  nats_port=0, sim_base_port=0, sim_time_scale=args.time_scale, forge_worker=False,
                                  gateway_events=False,
                                  extra_env={"TMX_ENGINE_SIM_NUM_GPU_BLOCKS": str(args.kv_blocks)},
                                  sim_env=sim_profiles(args.sim_profiles)))
        stack.start()
        gateways = {"1": [stack.urls["gateway"]]}
        try:
            for arm in args.gateways.split(","):
                if arm == "1":
                    continue
                if arm == "fixed-costs":  # one process that keeps the reference engine costs for every backend
                    gateways[arm] = [stack.add_gateway("gw-fixed-costs", TMX_GATEWAY_LEARN_ENGINE_COSTS="false")]
                    continue
                if arm == "budget-prefixes":  # one process whose prefix index trusts its budget
                    gateways[arm] = [stack.add_gateway("gw-budget-prefixes", TMX_GATEWAY_LEARN_PREFIX_CAPACITY="false")]
                    continue
                nats = "" if arm.endswith("-alone") else stack.urls["nats"]
                count = int(arm.split("-")[0])
                if arm.endswith("-own-costs"):  # workers sharing load and prefixes, each fitting costs alone
                    gateways[arm] = [stack.add_gateway(f"gw-{arm}", TMX_GATEWAY_WORKERS=str(count),
                                                       TMX_GATEWAY_NATS_URL=nats,
                                                       TMX_GATEWAY_SHARE_ENGINE_COSTS="false")]
                    continue
                if "-replicas" in arm:  # separate gateways of one process each, in one peer group unless alone
                    gateways[arm] = [stack.add_gateway(f"gw-{arm}-{i}", TMX_GATEWAY_NATS_URL=nats,
                                                       TMX_GATEWAY_PEER_GROUP="" if not nats else f"edge-{arm}")
                                     for i in range(count)]
                else:
                    gateways[arm] = [stack.add_gateway(f"gw-{arm}", TMX_GATEWAY_WORKERS=str(count),
                                                       TMX_GATEWAY_NATS_URL=nats)]

            def cell(urls: list[str], label: str, workload: str) -> None:
                strategy = label.split("@")[0]
                row = asyncio.run(run(urls, strategy, workload, args.requests, args.rate, args.max_tokens,
                                      args.tenants, args.system_words, stack.sim_ports, stream=not args.no_stream,
                                      fresh_connections=args.gateways != "1", gateway=not label.startswith("vllm")))
                row["strategy"] = label
                rows.append(row)
                what = "latency" if args.no_stream else "ttft"
                print(f"{workload:9} {label:24} {what} p50 {row[what + '_p50_ms']:7.1f} p95 "
                      f"{row[what + '_p95_ms']:7.1f} p99 {row[what + '_p99_ms']:7.1f} ms | {row['output_tok_s']:6.1f} tok/s | hit "
                      f"{row['cache_hit_rate']:5.1%} | hot-spot {row['hot_spot_ratio']:.2f}"
                      + (f" | predicted hits {row['predicted_hits_true']:.0f}/{row['predicted_hits']:.0f} true"
                         if row.get("predicted_hits") else ""), flush=True)

            for workload in args.workloads.split(","):
                for arm in args.gateways.split(","):
                    for strategy in args.strategies.split(","):
                        suffix = "" if "-replicas" in arm or "costs" in arm or "prefixes" in arm else "w"
                        label = strategy if arm == "1" else f"{strategy}@{arm}{suffix}"
                        cell(gateways[arm], label, workload)
                for policy in filter(None, args.router_policies.split(",")):
                    with vllm_router(policy, stack.sim_ports, Path(tmp)) as url:
                        cell([url], f"vllm-router:{policy}", workload)
        finally:
            stack.stop()
    profiles = f", prefill tok/s:step ms {args.sim_profiles}" if args.sim_profiles else ""
    save(args.name, rows, f"tensormux strategies and vllm-router policies ({args.router_policies or 'none'}) on "
         f"4 engine-sims (time scale {args.time_scale}, {args.kv_blocks} KV blocks of 16 tokens each{profiles}), "
         f"{args.requests} requests per cell at {args.rate}/s Poisson, max_tokens {args.max_tokens}, "
         f"{'not streamed' if args.no_stream else 'streamed'}; "
         f"shared: {args.tenants} tenants x {args.system_words}-word system prompts; gateways by workers: "
         f"{args.gateways} (label @nw: n workers sharing their view over NATS; @n-alonew: n workers, each alone; "
         f"@n-replicas: n gateways in one peer group, requests in turn; @n-replicas-alone: n gateways, each alone; "
         f"@fixed-costs: one process that learns no engine costs; @n-own-costs: n workers sharing their view "
         f"but not what their answers show of each backend's speed; @budget-prefixes: one process that does not "
         f"learn how much each engine's cache keeps)")


if __name__ == "__main__":
    main()
