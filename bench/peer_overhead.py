"""Gateway overhead side by side: direct vs Tensormux vs vllm-router vs LiteLLM proxy, on the same instant
fake backend (nginx returning a fixed chat completion, or a fixed SSE stream), with the same load generator
(wrk), at 1 and 64 connections, non-streaming and streaming.

Tensormux runs as `tmx up` runs it, with routing, metering and audit publishing to NATS on. The peers run
from their own venvs under bench/.venvs (created on first use: `pip install vllm-router` and
`pip install 'litellm[proxy]'`); nginx and wrk come from Debian (`apt-get install nginx-light wrk`).
Tensormux is measured as one process (`tensormux`) and with one worker process per core (`tensormux-<n>w`,
TMX_GATEWAY_WORKERS=n), as vllm-router's threads use every core. `python-floor` (and `python-floor-<n>w`) is
the same server and client stack with nothing on top (`bare_proxy.py`): between it and Tensormux lies the cost of
Tensormux's features; between it and the direct call, that of the stack.
Each cell also records the CPU time spent per request it served (from /proc, processes and their children):
by the proxy under test, by Tensormux's other services on this box (NATS storing the audit and outcome events,
health and planner consuming them; their CPU is spent whichever target is driven, but only Tensormux's cells
give them work) and by the backend. On a saturated box the requests/s follow from these: it is where the cores
went.
With `--rounds N` every cell is measured N times, the targets' order flipping each round, and reports its median
round: this machine's speed drifts by tens of percent within minutes, and one pass in one order lets that drift
land on one target and not another.
Run: `python bench/peer_overhead.py [--seconds 5] [--workers 1,2] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proc_cpu import spent_since, tree_cpu_seconds  # noqa: E402
from record import save  # noqa: E402

from tmx_cli.ports import free_port  # noqa: E402
from tmx_cli.stack import Stack, StackConfig  # noqa: E402
from tmx_config import BackendSpec, FleetFile  # noqa: E402
from tmx_config.fleet import dump_fleet  # noqa: E402

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
COMPLETION = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "json-model",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


def sse_body() -> str:
    chunk = lambda delta, finish=None: {"id": "chatcmpl-bench", "object": "chat.completion.chunk",  # noqa: E731
                                        "created": 0, "model": "sse-model",
                                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": f" w{i}"}) for i in range(8)] + \
        [chunk({}, "stop")]
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def nginx_conf(root: Path, json_port: int, sse_port: int) -> Path:
    def server(port: int, model: str, content_type: str, body: str) -> str:
        escaped = body.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        models = json.dumps({"object": "list", "data": [{"id": model, "object": "model", "max_model_len": 8192}]})
        return f"""
  server {{
    listen 127.0.0.1:{port} reuseport; access_log off;
    location = /health {{ return 200 ''; }}
    location = /v1/models {{ default_type application/json; return 200 '{models}'; }}
    location / {{ default_type {content_type}; return 200 '{escaped}'; }}
  }}"""
    conf = root / "nginx.conf"
    conf.write_text(f"""daemon off; worker_processes 1; pid {root}/nginx.pid; error_log {root}/error.log;
events {{ worker_connections 4096; }}
http {{
  client_body_temp_path {root}; proxy_temp_path {root}; fastcgi_temp_path {root}; uwsgi_temp_path {root};
  scgi_temp_path {root}; keepalive_requests 1000000;
{server(json_port, "json-model", "application/json", json.dumps(COMPLETION))}
{server(sse_port, "sse-model", "text/event-stream", sse_body())}
}}""")
    return conf


def require_tools() -> None:
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} not found: apt-get install nginx-light wrk")


def start_nginx(root: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """nginx answering instantly: its process and its URLs, "json" (a chat completion for `json-model`) and
    "sse" (a chat stream for `sse-model`), once it answers."""
    json_port, sse_port = free_port(), free_port()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-c", str(nginx_conf(root, json_port, sse_port)), "-p", str(root)])
    urls = {"json": f"http://127.0.0.1:{json_port}", "sse": f"http://127.0.0.1:{sse_port}"}
    wait_http(urls["json"] + "/health")
    return proc, urls


def ensure_venv(name: str, requirement: str) -> Path:
    venv = VENVS / name
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", requirement], check=True)
    return venv


def wait_http(url: str, timeout: float = 60.0, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as resp:
                if resp.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def spawn(procs: list[subprocess.Popen], what: str, cmd: list[str], health_url: str, log: Path,
          timeout: float = 60.0, env: dict | None = None) -> None:
    """Start a proxy under test, its output in `log`; return once `health_url` answers, or stop the bench with the
    end of its log."""
    with open(log, "wb") as out:
        procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env))
    try:
        wait_http(health_url, timeout=timeout)
    except TimeoutError:
        raise SystemExit(f"{what} did not start:\n" + log.read_text()[-2000:]) from None


def wrk(url: str, model: str, stream: bool, connections: int, seconds: float, token: str = "") -> dict:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "ping"}], "stream": stream,
                       "max_tokens": 8})
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      f'wrk.headers["Content-Type"] = "application/json"\n{auth}')
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
                          f"{url}/v1/chat/completions"], capture_output=True, text=True, timeout=seconds + 30).stdout
    script.unlink()

    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    requests = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "requests": int(requests.group(1)) if requests else 0,
            "p50_ms": latency("50"), "p99_ms": latency("99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(0) if errors else ""}


def median_round(rounds: list[dict]) -> dict:
    """The round with the median requests/s (of an even number, the lower middle one): a whole round's figures,
    latency and CPU with the requests/s they came with."""
    return sorted(rounds, key=lambda r: r["rps"])[(len(rounds) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every cell this many times, the targets' order flipping each round; each "
                             "cell reports its median round (by requests/s)")
    parser.add_argument("--peers", default="python-floor,vllm-router,litellm",
                        help="python-floor: the gateway's HTTP stack with no features (bare_proxy.py)")
    parser.add_argument("--workers", default=f"1,{os.cpu_count() or 1}",
                        help="Tensormux gateways to measure, by worker processes (TMX_GATEWAY_WORKERS)")
    args = parser.parse_args()
    require_tools()
    peers = args.peers.split(",") if args.peers else []
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nginx, backends = start_nginx(root)
        procs.append(nginx)
        fleet = root / "fleet.yaml"
        dump_fleet(FleetFile(backends=(BackendSpec(id="json", url=backends["json"], models=("json-model",)),
                                       BackendSpec(id="sse", url=backends["sse"], models=("sse-model",)))), fleet)
        stack = Stack(StackConfig(data_dir=root / "stack", fleet_file=fleet, gateway_port=0, health_port=0,
                                  planner_port=0, registry_port=0, nats_port=0, forge_worker=False))
        stack.start()
        # by target and mode: the URL, the bearer token and the processes that serve it (their CPU is charged to
        # it; the processes they fork or spawn are found when measured)
        targets: dict[str, dict[str, tuple[str, str, list[int]]]] = {
            "direct": {m: (backends[m], "", []) for m in backends}}
        # Tensormux's other services on this box: NATS and the event consumers (health, planner, registry)
        services = [c.proc.pid for c in stack.children if c.name in ("nats", "registry", "health", "planner")]
        try:
            for workers in sorted({int(w) for w in args.workers.split(",")}):
                name = "gateway" if workers == 1 else f"gw-{workers}w"
                url = stack.urls["gateway"] if workers == 1 else \
                    stack.add_gateway(name, TMX_GATEWAY_WORKERS=str(workers))
                targets["tensormux" if workers == 1 else f"tensormux-{workers}w"] = {
                    m: (url, "", [stack.child(name).proc.pid]) for m in backends}
            if "python-floor" in peers:  # the gateway's server and client stack alone: see bare_proxy.py
                for workers in sorted({int(w) for w in args.workers.split(",")}):
                    name = "python-floor" if workers == 1 else f"python-floor-{workers}w"
                    targets[name] = {}
                    for mode, url in backends.items():
                        port = free_port()
                        spawn(procs, name, [sys.executable, str(HERE / "bare_proxy.py"), "--upstream", url, "--port",
                                            str(port), "--workers", str(workers)],
                              f"http://127.0.0.1:{port}/health", root / f"{name}-{mode}.log")
                        targets[name][mode] = (f"http://127.0.0.1:{port}", "", [procs[-1].pid])
            if "vllm-router" in peers:
                venv = ensure_venv("vllm-router", "vllm-router")
                targets["vllm-router"] = {}
                for mode, url in backends.items():
                    port = free_port()
                    spawn(procs, "vllm-router", [str(venv / "bin" / "vllm-router"), "--host", "127.0.0.1", "--port",
                                                 str(port), "--worker-urls", url, "--policy", "round_robin",
                                                 "--prometheus-port", str(free_port())],
                          f"http://127.0.0.1:{port}/health", root / f"vllm-router-{mode}.log")
                    targets["vllm-router"][mode] = (f"http://127.0.0.1:{port}", "", [procs[-1].pid])
            if "litellm" in peers:
                venv = ensure_venv("litellm", "litellm[proxy]")
                config = root / "litellm.yaml"
                config.write_text(json.dumps({
                    "model_list": [{"model_name": f"{m}-model", "litellm_params": {
                        "model": f"openai/{m}-model", "api_base": f"{backends[m]}/v1", "api_key": "none"}}
                        for m in backends],
                    "general_settings": {"master_key": "sk-bench"},
                    "litellm_settings": {"telemetry": False}}))
                port = free_port()
                spawn(procs, "LiteLLM", [str(venv / "bin" / "litellm"), "--config", str(config), "--port", str(port),
                                         "--host", "127.0.0.1", "--num_workers", "1"],
                      f"http://127.0.0.1:{port}/health/liveliness", root / "litellm.log", timeout=180,
                      env={**os.environ, "LITELLM_LOG": "ERROR"})
                targets["litellm"] = {m: (f"http://127.0.0.1:{port}", "sk-bench", [procs[-1].pid]) for m in backends}
            runs: dict[tuple[str, int, str], list[dict]] = {}  # (mode, connections, target) -> a result per round
            for round_ in range(args.rounds):
                # every round measures every cell; the targets' order flips each round, so a machine that speeds
                # up or slows down during the run does not favour the targets measured first
                order = list(targets.items()) if round_ % 2 == 0 else list(reversed(targets.items()))
                for mode in ("json", "sse"):
                    for connections in (1, 64):
                        for name, by_mode in order:
                            url, token, pids = by_mode[mode]
                            groups = {"proxy": pids, "services": services, "backend": [nginx.pid]}
                            cpu = {group: tree_cpu_seconds(roots) for group, roots in groups.items()}
                            result = wrk(url, f"{mode}-model", mode == "sse", connections, args.seconds, token)
                            for group, roots in groups.items():
                                result[f"{group}_cpu_us_per_request"] = \
                                    spent_since(cpu[group], roots) / max(result["requests"], 1) * 1e6
                            runs.setdefault((mode, connections, name), []).append(result)
                            print(f"round {round_ + 1}/{args.rounds} {'stream' if mode == 'sse' else 'json':6} "
                                  f"c={connections:<3} {name:16} {result['rps']:9.0f} req/s", flush=True)
            rows = []
            for mode in ("json", "sse"):
                for connections in (1, 64):
                    direct = None
                    for name in targets:
                        rounds = runs[(mode, connections, name)]
                        result = median_round(rounds)
                        direct = direct or result
                        row = {"target": name, "stream": mode == "sse", "connections": connections, **result,
                               "added_p50_ms": result["p50_ms"] - direct["p50_ms"],
                               "rps_by_round": [r["rps"] for r in rounds],
                               "non_2xx": sum(r["non_2xx"] for r in rounds)}
                        rows.append(row)
                        print(f"{'stream' if mode == 'sse' else 'json':6} c={connections:<3} {name:14} "
                              f"{result['rps']:9.0f} req/s  p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f}"
                              f" ms  added p50 {row['added_p50_ms']:+.2f} ms  CPU/request: proxy "
                              f"{result['proxy_cpu_us_per_request']:5.0f} us, services "
                              f"{result['services_cpu_us_per_request']:4.0f} us, backend "
                              f"{result['backend_cpu_us_per_request']:4.0f} us  non-2xx {row['non_2xx']}",
                              flush=True)
        finally:
            stack.stop()
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    save("peer_overhead", rows, f"instant nginx backend; wrk -t1, same body for all; Tensormux with routing, "
         f"metering and NATS audit on; everything on this machine's 2 cores; {args.rounds} round(s) of every cell, "
         f"the targets' order flipping each round, each cell's median round")


if __name__ == "__main__":
    main()
