"""Several gateway worker processes on one port: a supervisor that binds the port, forks the workers and keeps
them running.

One Python process serves one core. With `workers` > 1 the supervisor binds one listening socket per worker on
the same port (SO_REUSEPORT: the kernel spreads new connections across them) and forks a worker onto each. A
worker that dies is forked again onto its own socket, which the supervisor holds open meanwhile, so the
connections the kernel queued there wait for it rather than being refused. SIGTERM or SIGINT stops them all
gracefully (each drains its requests and flushes its events), SIGKILL after `STOP_GRACE_S`.

Each worker is a whole gateway with its own identity (`<gateway_id>-w<i>`) and event spool, and shares its
routing view with the others over NATS (see `domain.peers`). Prometheus metrics are kept per process in a
shared directory and summed at `/metrics` by whichever worker answers (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable

from tmx_gateway.settings import Settings
from tmx_gateway.spool import worker_spool_path

log = logging.getLogger(__name__)

STOP_GRACE_S = 20.0  # uvicorn's own graceful shutdown (5 s) plus the event flush
CRASH_LOOP_S = 1.0  # a worker that dies within this long of starting is forked again only after this long
_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on one port (`port` 0: a free one, the same for all)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def worker_settings(settings: Settings, index: int) -> Settings:
    """Worker `index`'s settings: its own id and spool (`worker_spool_path`), in the peer group named by the
    gateway's id."""
    return settings.model_copy(update={"gateway_id": f"{settings.gateway_id}-w{index}",
                                       "spool_path": worker_spool_path(settings.spool_path, index),
                                       "peer_group": settings.peer_group or settings.gateway_id})


def use_multiprocess_metrics(directory: str) -> None:
    """Keep every metric created from now on in `directory`, per process (call before forking workers)."""
    from prometheus_client import values

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.get_value_class()  # chosen at import time; the env var was set after it


class Supervisor:
    def __init__(self, settings: Settings, run_worker: Callable[[Settings, socket.socket], None],
                 on_exit: Callable[[int], None] = lambda pid: None) -> None:
        self.settings = settings
        self.run_worker = run_worker
        self.on_exit = on_exit  # told the pid of each worker that exited
        self.sockets: list[socket.socket] = []
        self.pids: dict[int, int] = {}  # pid -> worker index
        self.started: dict[int, float] = {}  # worker index -> when it was last forked
        self.pending: dict[int, float] = {}  # worker index -> when to fork it again

    def run(self) -> int:
        n = self.settings.workers
        self.sockets = listening_sockets(self.settings.host, self.settings.port, n)
        port = self.sockets[0].getsockname()[1]
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for index in range(n):
                self._fork(index)
            log.info("gateway workers started", extra={"workers": n, "port": port, "pids": sorted(self.pids)})
            return self._supervise()
        finally:
            for sock in self.sockets:
                sock.close()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def _fork(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
                for i, sock in enumerate(self.sockets):
                    if i != index:
                        sock.close()
                self.run_worker(worker_settings(self.settings, index), self.sockets[index])
            except BaseException:
                log.exception("gateway worker failed", extra={"worker": index})
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self.pids[pid] = index
        self.started[index] = time.monotonic()

    def _supervise(self) -> int:
        stop_by: float | None = None
        while self.pids:
            now = time.monotonic()
            waits = [1.0] + [at - now for at in self.pending.values()] + ([stop_by - now] if stop_by else [])
            info = signal.sigtimedwait(_SIGNALS, max(0.01, min(waits)))
            received = set()
            while info is not None:  # all that is pending: a Ctrl-C reaches the workers too, and one that exits
                received.add(info.si_signo)  # on it must not be forked again before the SIGINT is seen here
                info = signal.sigtimedwait(_SIGNALS, 0)
            stop = received & {signal.SIGTERM, signal.SIGINT}
            if stop and stop_by is None:
                log.info("stopping gateway workers", extra={"signal": signal.Signals(min(stop)).name})
                stop_by = time.monotonic() + STOP_GRACE_S
                self.pending.clear()
                self._signal_all(signal.SIGTERM)
            self._reap(restart=stop_by is None)
            now = time.monotonic()
            for index, at in list(self.pending.items()):
                if at <= now:
                    del self.pending[index]
                    self._fork(index)
                    log.info("gateway worker restarted", extra={"worker": index})
            if stop_by is not None and now >= stop_by and self.pids:
                log.error("gateway workers did not stop in time: killing them", extra={"pids": sorted(self.pids)})
                self._signal_all(signal.SIGKILL)
                stop_by = now + 5.0
        return 0

    def _reap(self, restart: bool) -> None:
        while self.pids:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            index = self.pids.pop(pid, None)
            if index is None:
                continue
            self.on_exit(pid)
            if restart:
                lived = time.monotonic() - self.started[index]
                log.error("gateway worker exited; forking it again", extra={
                    "worker": index, "pid": pid, "exit": os.waitstatus_to_exitcode(status),
                    "delay_s": CRASH_LOOP_S if lived < CRASH_LOOP_S else 0})
                self.pending[index] = time.monotonic() + (CRASH_LOOP_S if lived < CRASH_LOOP_S else 0.0)

    def _signal_all(self, sig: int) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def run_workers(settings: Settings, run_worker: Callable[[Settings, socket.socket], None]) -> int:
    """Supervise `settings.workers` workers until stopped; each runs `run_worker(its settings, its socket)`."""
    metrics_dir = tempfile.mkdtemp(prefix="tmx-gateway-metrics-")
    use_multiprocess_metrics(metrics_dir)
    from prometheus_client import multiprocess

    import tmx_gateway.app  # noqa: F401  loaded once here, shared by the forked workers
    try:
        return Supervisor(settings, run_worker, lambda pid: multiprocess.mark_process_dead(pid, metrics_dir)).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
