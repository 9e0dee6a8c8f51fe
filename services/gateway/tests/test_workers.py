"""A gateway of several worker processes (TMX_GATEWAY_WORKERS): one port, a view of load, prefixes and metrics
shared across the workers over a real NATS, a killed worker forked again, a graceful stop."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tmx_config import BackendSpec, FleetFile
from tmx_config.fleet import dump_fleet
from tmx_gateway.domain.routing.prefix_index import BLOCK_CHARS

from conftest import free_port

MODEL = "tmx-sim-llama"
LONG_PROMPT = "You are the support assistant of a company that sells very long system prompts. " * 12


class GatedBackend:
    """An OpenAI-shaped backend whose answers to prompts starting "hold" wait for `release`."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    def app(self) -> Starlette:
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            if body["messages"][-1]["content"].startswith("hold"):
                await self.release.wait()
            return JSONResponse({"id": "x", "object": "chat.completion", "model": MODEL, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


class WorkersGateway:
    def __init__(self, tmp_path: Path, backends: list[tuple[str, str]], nats_url: str, workers: int = 2,
                 name: str = "gateway", **env_overrides: str) -> None:
        fleet = tmp_path / f"{name}.yaml"
        dump_fleet(FleetFile(backends=tuple(BackendSpec(id=i, url=u, models=(MODEL,)) for i, u in backends)), fleet)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.workers = workers
        env = {**os.environ, "TMX_GATEWAY_WORKERS": str(workers), "TMX_GATEWAY_PORT": self.url.rsplit(":", 1)[1],
               "TMX_GATEWAY_FLEET_FILE": str(fleet), "TMX_GATEWAY_NATS_URL": nats_url,
               "TMX_GATEWAY_SPOOL_PATH": str(tmp_path / f"{name}-events.spool"), "TMX_GATEWAY_FLEET_RELOAD_S": "0",
               **env_overrides}
        self.answered = 0  # chat requests answered 200
        self.log_path = tmp_path / f"{name}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "tmx_gateway"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def worker_pids(self) -> set[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(p) for p in path.read_text().split()} if path.exists() else set()

    async def ready(self) -> bool:
        try:
            return (await self.get("/readyz"))[0] == 200 and \
                len(self.worker_pids()) == (self.workers if self.workers > 1 else 0)
        except aiohttp.ClientError:
            return False

    async def get(self, path: str) -> tuple[int, dict]:
        """Over a new connection each time, so the kernel may hand it to either worker."""
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            async with http.get(self.url + path) as resp:
                return resp.status, await resp.json()

    async def chat(self, content: str, **headers: str) -> tuple[int, dict]:
        payload = {"model": MODEL, "messages": [{"role": "system", "content": LONG_PROMPT},
                                                {"role": "user", "content": content}], "max_tokens": 4}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            async with http.post(self.url + "/v1/chat/completions", json=payload,
                                 headers={"x-tmx-explain": "1", "x-tmx-routing": "prefix_aware", **headers}) as resp:
                await resp.read()
                self.answered += resp.status == 200
                return resp.status, json.loads(resp.headers.get("x-tmx-route", "{}"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self.log.close()


def views_of_every_worker(gw: WorkersGateway, check, workers: int = 2):
    """The latest /admin/backends view of each worker, and a check for `tmx_async_wait` that polls over fresh
    connections until it has every worker's view and `check` passes on each."""
    views: dict[str, dict] = {}

    async def every_worker_agrees() -> bool:
        try:
            status, view = await gw.get("/admin/backends")
        except aiohttp.ClientError:
            return False
        if status == 200:
            views[view["gateway"]] = view
        return len(views) == workers and all(check(v) for v in views.values())
    return views, every_worker_agrees


@pytest.fixture
async def gated(asgi_server):
    backends = [GatedBackend(), GatedBackend()]
    async with asgi_server(backends[0].app()) as (url0, _), asgi_server(backends[1].app()) as (url1, _):
        yield backends, [("b0", url0), ("b1", url1)]
    for b in backends:
        b.release.set()


async def test_workers_share_load_and_prefixes_and_sum_their_metrics(gated, tmp_path, nats_url, tmx_async_wait):
    backends, urls = gated
    gw = WorkersGateway(tmp_path, urls, nats_url)
    try:
        await tmx_async_wait(gw.ready, 30, what="gateway workers ready")

        # load: requests held in flight, over their own connections, whichever worker took them
        held = [asyncio.create_task(gw.chat(f"hold {i}", **{"x-tmx-routing": "least_inflight"})) for i in range(6)]
        views, agree = views_of_every_worker(gw, lambda v: sum(b["inflight"] for b in v["backends"]) == 6)
        await tmx_async_wait(agree, 15, what="every worker counting all 6 requests in flight")
        assert {tuple(v["peers"]) for v in views.values()} == {("gw-0-w1",), ("gw-0-w0",)}
        for b in backends:
            b.release.set()
        assert [status for status, _ in await asyncio.gather(*held)] == [200] * 6
        views, agree = views_of_every_worker(gw, lambda v: all(b["inflight"] == 0 for b in v["backends"]))
        await tmx_async_wait(agree, 15, what="every worker seeing the fleet idle again")

        # prefixes: what one worker routed, the other learns, and routes the same prompt there as a cache hit
        status, first = await gw.chat("first question")
        assert status == 200 and first["reason"].startswith("cold prompt")
        blocks = len(LONG_PROMPT.encode()) // BLOCK_CHARS
        # ... and the first request's load gone from both views: a peer's note sent while it was in flight would
        # otherwise make its backend look busy and send the cache hit elsewhere
        views, agree = views_of_every_worker(gw, lambda v: {b["id"]: b["cached_prefix_blocks"]
                                                                   for b in v["backends"]}[first["chosen"]] >= blocks
                                             and all(b["inflight"] == 0 for b in v["backends"]))
        await tmx_async_wait(agree, 15, what="both workers knowing the prompt's blocks are cached there, and idle")
        other = None
        for _ in range(200):  # new connections land on either worker: until the other one answers
            status, other = await gw.chat("second question")
            if other["gateway"] != first["gateway"]:
                break
        assert other["gateway"] != first["gateway"], "no request reached the second worker"
        assert other["chosen"] == first["chosen"] and f"{blocks}/" in other["reason"] and "cached" in other["reason"]

        # metrics: any worker's /metrics counts every worker's requests, the other's within its flush interval
        # (1 s; metrics.Children), never more
        totals = []

        async def every_request_counted() -> bool:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
                async with http.get(gw.url + "/metrics") as resp:
                    text = await resp.text()
            totals.append(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                              if line.startswith("tmx_gateway_requests_total{")))
            return totals[-1] == gw.answered

        await tmx_async_wait(every_request_counted, 10, what="every worker's requests in /metrics")
        assert gw.answered >= 8 and max(totals) == gw.answered
        # and any worker's /admin/backends counts every worker's served attempts, and every worker has fitted each
        # backend's speed from every answer (each taught its own worker's fit, and through the notes the other's)
        views, agree = views_of_every_worker(
            gw, lambda v: sum(b["served"] for b in v["backends"]) == gw.answered and
            not any(b["failed"] for b in v["backends"]) and
            {b["id"]: b["engine_costs"]["observations"] for b in v["backends"]} ==
            {b["id"]: b["served"] for b in v["backends"]})
        await tmx_async_wait(agree, 15, what="every worker counting all workers' served requests and observations")
    finally:
        assert gw.stop() == 0


async def test_a_killed_worker_is_forked_again_and_no_request_is_refused_meanwhile(gated, tmp_path, nats_url,
                                                                                 tmx_async_wait):
    backends, urls = gated
    for b in backends:
        b.release.set()
    gw = WorkersGateway(tmp_path, urls, nats_url)
    try:
        await tmx_async_wait(gw.ready, 30, what="gateway workers ready")
        before = gw.worker_pids()
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        # new connections keep coming, some hashed to the dead worker's socket: they wait for its successor
        answers = await asyncio.gather(*(gw.chat(f"during {i}") for i in range(20)))
        assert [status for status, _ in answers] == [200] * 20
        await tmx_async_wait(lambda: len(gw.worker_pids()) == 2 and victim not in gw.worker_pids(), 15,
                             what="the killed worker forked again")
        views, agree = views_of_every_worker(gw, lambda v: True)
        await tmx_async_wait(agree, 15, what="both workers answering")
        assert set(views) == {"gw-0-w0", "gw-0-w1"}
        children = gw.worker_pids()
    finally:
        assert gw.stop() == 0  # SIGTERM: every worker drains and exits, then the supervisor
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)


async def test_ctrl_c_stops_every_worker_and_forks_none_again(gated, tmp_path, nats_url, tmx_async_wait):
    _, urls = gated
    gw = WorkersGateway(tmp_path, urls, nats_url)
    try:
        await tmx_async_wait(gw.ready, 30, what="gateway workers ready")
        os.killpg(gw.proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the supervisor and its workers at once
    finally:
        assert gw.stop() == 0
    log = gw.log_path.read_text()
    assert "stopping gateway workers" in log and "forking it again" not in log


async def test_gateway_replicas_in_one_peer_group_share_what_they_routed(gated, tmp_path, nats_url, tmx_async_wait):
    """Two separately started gateways (other hosts, in production: each its own hash secret) in one peer group:
    what one routed, the other learns and routes the same way as a cache hit."""
    backends, urls = gated
    for b in backends:
        b.release.set()
    replicas = [WorkersGateway(tmp_path, urls, nats_url, workers=1, name=f"edge-{i}", TMX_GATEWAY_GATEWAY_ID=f"edge-{i}",
                               TMX_GATEWAY_PEER_GROUP="edge", PYTHONHASHSEED=str(i + 1)) for i in range(2)]
    try:
        for replica in replicas:
            await tmx_async_wait(replica.ready, 30, what="gateway replica ready")
        status, first = await replicas[0].chat("first question")
        assert status == 200 and first["gateway"] == "edge-0" and first["reason"].startswith("cold prompt")
        blocks = len(LONG_PROMPT.encode()) // BLOCK_CHARS

        async def the_other_learned() -> bool:
            status, view = await replicas[1].get("/admin/backends")
            # learned the blocks, and no longer counting the first request as in flight (a note sent while it was
            # would make its backend look busy and send the cache hit elsewhere)
            return status == 200 and view["peers"] == ["edge-0"] and \
                {b["id"]: b["cached_prefix_blocks"] for b in view["backends"]}[first["chosen"]] >= blocks and \
                all(b["inflight"] == 0 for b in view["backends"])
        await tmx_async_wait(the_other_learned, 15, what="the other replica knowing the prompt's blocks are cached")
        status, second = await replicas[1].chat("second question")
        assert status == 200 and second["gateway"] == "edge-1" and second["chosen"] == first["chosen"]
        assert f"{blocks}/" in second["reason"] and "cached" in second["reason"]
    finally:
        # one process: uvicorn shuts down gracefully, then exits by the signal it caught
        assert [replica.stop() for replica in replicas] == [-signal.SIGTERM] * 2


async def test_replicas_that_share_no_engine_costs_still_share_what_they_routed(gated, tmp_path, nats_url,
                                                                              tmx_async_wait):
    """TMX_GATEWAY_SHARE_ENGINE_COSTS=false: peers still tell each other their load and what they routed, but each
    fits every backend's speed from its own answers alone."""
    backends, urls = gated
    for b in backends:
        b.release.set()
    replicas = [WorkersGateway(tmp_path, urls, nats_url, workers=1, name=f"own-{i}", TMX_GATEWAY_GATEWAY_ID=f"own-{i}",
                               TMX_GATEWAY_PEER_GROUP="own", TMX_GATEWAY_SHARE_ENGINE_COSTS="false")
                for i in range(2)]
    try:
        for replica in replicas:
            await tmx_async_wait(replica.ready, 30, what="gateway replica ready")
        status, first = await replicas[0].chat("first question")
        assert status == 200 and first["gateway"] == "own-0"
        blocks = len(LONG_PROMPT.encode()) // BLOCK_CHARS
        views = {}

        async def the_other_heard_the_answer() -> bool:
            # the note that carries the request's end (in flight back to 0) would carry the answer's cost observation
            status, views["own-1"] = await replicas[1].get("/admin/backends")
            backend = {b["id"]: b for b in views["own-1"]["backends"]}[first["chosen"]]
            return status == 200 and backend["cached_prefix_blocks"] >= blocks and backend["served"] == 1 and \
                all(b["inflight"] == 0 for b in views["own-1"]["backends"])
        await tmx_async_wait(the_other_heard_the_answer, 15, what="the other replica hearing of the answer")
        _, views["own-0"] = await replicas[0].get("/admin/backends")
        observations = {gw: {b["id"]: b["engine_costs"]["observations"] for b in view["backends"]}
                        for gw, view in views.items()}
        assert observations == {"own-0": {"b0": 0, "b1": 0, first["chosen"]: 1}, "own-1": {"b0": 0, "b1": 0}}
    finally:
        assert [replica.stop() for replica in replicas] == [-signal.SIGTERM] * 2
