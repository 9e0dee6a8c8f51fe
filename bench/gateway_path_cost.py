"""The gateway's own CPU per request, apart from its HTTP server and client: the ASGI app is called in-process
(no uvicorn) and its upstream session is a stand-in that answers at once (no aiohttp, no sockets), so what is
timed is Tensormux's code on the request path (parsing, tenancy, rate limits, routing, attempts, metering,
metrics, audit records) and the event loop's part in it.

Arms, side by side on the same fake upstream, JSON and streamed answers:
- `bare`: `bare_proxy.py`'s app, the featureless forwarder `peer_overhead` measures as the Python floor;
- `tensormux`: the gateway's app with routing (least_inflight), metering and metrics, no audit;
- `tensormux-audit`: the same with its audit and outcome events published to NATS (an embedded nats-server
  from the wheel), as `tmx up` runs it: the publisher's passes run in the same loop between requests;
- `tensormux-traced`: `tensormux` with tracing on, every request sampled (a request span and an attempt span,
  batched and exported over OTLP/HTTP by the SDK's thread to a sink in another process, which answers 200);
- `tensormux-traced-1pct`: the same, sampling 1% of traces (`OTEL_TRACES_SAMPLER=parentbased_traceidratio`,
  `OTEL_TRACES_SAMPLER_ARG=0.01`).
Each arm: a warm-up, then 7 rounds of `--requests` requests one after another; the median round's microseconds
per request. These figures are deterministic to ~1%, where requests/s through real sockets (`peer_overhead`)
move by several percent from run to run: the tool for measuring a change to the request path.
Run: `python bench/gateway_path_cost.py [--requests 5000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_proxy import UPSTREAM_ENV, BareProxy  # noqa: E402
from peer_overhead import COMPLETION, sse_body  # noqa: E402
from record import save  # noqa: E402

from tmx_cli.ports import free_port  # noqa: E402
from tmx_cli.stack import nats_server_binary  # noqa: E402
from tmx_config import BackendSpec, FleetFile  # noqa: E402
from tmx_gateway.app import Gateway  # noqa: E402
from tmx_gateway.http_api import build_starlette  # noqa: E402
from tmx_gateway.settings import Settings  # noqa: E402

ANSWERS = {False: (json.dumps(COMPLETION).encode(), "application/json"),
           True: (sse_body().encode(), "text/event-stream")}


class _Content:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def iter_any(self):
        yield self._body


class _Upstream:
    """An upstream answer as aiohttp's `ClientResponse` gives it to both apps, all of it already read."""

    status = 200

    def __init__(self, stream: bool) -> None:
        self.body, content_type = ANSWERS[stream]
        self.headers = {"content-type": content_type, "content-length": str(len(self.body))}
        self.content = _Content(self.body)

    @property
    def content_length(self) -> int:  # as aiohttp's reads it from the headers
        return int(self.headers["content-length"])

    async def read(self) -> bytes:
        return self.body

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Posted:
    """What `session.post` returns: awaited (the gateway) or entered (the bare proxy)."""

    def __init__(self, stream: bool) -> None:
        self._upstream = _Upstream(stream)

    def __await__(self):
        yield from asyncio.sleep(0).__await__()  # a suspension, as a real upstream call has
        return self._upstream

    async def __aenter__(self) -> _Upstream:
        return await self

    async def __aexit__(self, *exc) -> None:
        pass


class InstantSession:
    def post(self, url: str, data: bytes = b"", headers=None, timeout=None) -> _Posted:
        return _Posted(b'"stream": true' in data)

    async def close(self) -> None:
        pass


def _started(argv: list[str], port: int, what: str) -> subprocess.Popen:
    """`argv` started, once it listens on `port`."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.05)


def start_nats(store: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    argv = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store]
    return _started(argv, port, "nats-server"), f"nats://127.0.0.1:{port}"


# an OTLP/HTTP sink: reads each export and answers 200 with an empty protobuf response, as a collector does
_SINK = """
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers['content-length']))
        self.send_response(200); self.send_header('content-type', 'application/x-protobuf')
        self.send_header('content-length', '0'); self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), Sink).serve_forever()
"""


def start_otlp_sink() -> tuple[subprocess.Popen, str]:
    port = free_port()
    return _started([sys.executable, "-c", _SINK, str(port)], port, "the OTLP sink"), \
        f"http://127.0.0.1:{port}/v1/traces"


def _scope(body: bytes) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"gateway"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())]}


async def _measure(arm: str, stream: bool, requests: int, nats_url: str, spool_dir: str, otlp: str) -> float:
    if arm == "bare":
        os.environ[UPSTREAM_ENV] = "http://backend"
        app = BareProxy()
        app.session = InstantSession()
        return await _time(app, stream, requests)
    settings = Settings(nats_url=nats_url if arm == "tensormux-audit" else "", fleet_file="", fleet_reload_s=0,
                        spool_path=os.path.join(spool_dir, f"{arm}-{stream}.spool"),
                        otlp_traces_endpoint=otlp if arm.startswith("tensormux-traced") else "")
    sampled = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}
    if arm == "tensormux-traced-1pct":
        os.environ.update(sampled)  # read by the SDK when the gateway builds its tracer provider
    gateway = Gateway(settings, FleetFile(backends=(BackendSpec(id="b", url="http://backend", models=("m",)),)))
    for name in sampled:
        os.environ.pop(name, None)
    app = build_starlette(gateway.api, gateway.lifespan)
    async with gateway.lifespan(app.app):
        await gateway.api.session.close()
        gateway.api.session = InstantSession()
        deadline = time.monotonic() + 30
        while settings.nats_url and not (gateway.nats_connected and gateway.publisher.bus is not None):
            if time.monotonic() > deadline:
                raise SystemExit("the gateway did not connect to NATS")
            await asyncio.sleep(0.05)
        return await _time(app, stream, requests)


async def _time(app, stream: bool, requests: int) -> float:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "ping"}], "stream": stream,
                       "max_tokens": 8}).encode()
    scope, message, statuses = _scope(body), {"type": "http.request", "body": body, "more_body": False}, []

    async def receive() -> dict:
        return message

    async def send(event: dict) -> None:
        if event["type"] == "http.response.start":
            statuses.append(event["status"])

    for _ in range(1000):
        await app(scope, receive, send)
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(requests):
            await app(scope, receive, send)
        rounds.append((time.perf_counter() - start) / requests)
    if set(statuses) != {200}:
        raise SystemExit(f"answered {sorted(set(statuses))}, not only 200")
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000, help="requests per round (7 rounds per arm)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        nats, nats_url = start_nats(os.path.join(tmp, "nats"))
        sink, otlp = start_otlp_sink()
        try:
            for stream in (False, True):
                bare = None
                for arm in ("bare", "tensormux", "tensormux-audit", "tensormux-traced", "tensormux-traced-1pct"):
                    us = uvloop.run(_measure(arm, stream, args.requests, nats_url, tmp, otlp)) * 1e6
                    bare = bare or us
                    rows.append({"arm": arm, "stream": stream, "us_per_request": round(us, 2),
                                 "vs_bare": round(us / bare, 2), "added_us": round(us - bare, 2)})
                    print(f"{'stream' if stream else 'json':6} {arm:16} {us:7.2f} us/request  {us / bare:5.2f}x "
                          f"bare  +{us - bare:.2f} us", flush=True)
        finally:
            for proc in (nats, sink):
                proc.terminate()
                proc.wait(10)
    save("gateway_path_cost", rows, f"the ASGI apps called in-process against an instant fake upstream session (no "
         f"HTTP server or client, no sockets); 7 rounds of {args.requests} sequential requests per arm, median "
         f"round; bare = bench/bare_proxy.py's app; tensormux = least_inflight routing, metering and metrics; "
         f"-audit = plus audit and outcome events published to an embedded nats-server; -traced = tensormux with "
         f"every request traced (two spans) and exported over OTLP/HTTP to a sink process; -traced-1pct = 1% of "
         f"traces sampled")


if __name__ == "__main__":
    main()
