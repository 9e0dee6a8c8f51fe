"""NATS stopped and restarted under load: every request is served and every audit event reaches the
stream exactly once. Also the JSONL audit sink for gateways without NATS."""

import asyncio
import json

import nats.errors

from tmx_eventbus import EventBus, decode_all

from .test_gateway_http import chat, engine_sims, gateway  # noqa: TID252 - shared helpers of this suite

TOTAL, CONCURRENCY = 150, 6


async def test_nats_restart_under_load_loses_and_duplicates_nothing(asgi_server, tmp_path, nats_server,
                                                                    tmx_async_wait):
    async with engine_sims(asgi_server, 2) as sims:
        backends = [("s1", sims[0][0]), ("s2", sims[1][0])]
        async with gateway(asgi_server, tmp_path, backends, nats_url=nats_server.url,
                           spool_replay_interval_s=0.1) as (http, gw):
            await tmx_async_wait(gw.ready, 10, what="gateway ready")
            statuses, request_ids = [], []
            sent = 0

            async def client():
                nonlocal sent
                while sent < TOTAL:
                    sent += 1
                    async with http.post("/v1/chat/completions", json=chat()) as resp:
                        await resp.read()
                        statuses.append(resp.status)
                        request_ids.append(resp.headers["x-tmx-request-id"])

            async def chaos():
                await tmx_async_wait(lambda: len(statuses) >= 50, 30, what="first third")
                await asyncio.to_thread(nats_server.stop)
                await tmx_async_wait(lambda: len(statuses) >= 100, 30, what="second third, NATS down")
                # events published into the dead connection time out (2 s) and move to the disk spool
                await tmx_async_wait(lambda: gw.publisher.spool.size > 0, 10, what="events spooled")
                await asyncio.to_thread(nats_server.start)

            await asyncio.gather(chaos(), *(client() for _ in range(CONCURRENCY)))
            assert statuses == [200] * TOTAL

            bus = await EventBus.connect(nats_server.url, name="test")
            psub = await bus.js.pull_subscribe("tmx.audit.>", durable="check", stream="TMX_AUDIT")
            seen = []

            async def fetch(timeout: float) -> list[str]:
                try:
                    msgs = await psub.fetch(200, timeout=timeout)
                except nats.errors.TimeoutError:
                    return []
                return [e.request_id for m in msgs for e in decode_all(m.data, m.headers)]

            async def all_stored() -> bool:  # the spool replays in the background; events arrive packed
                seen.extend(await fetch(0.5))
                return len(seen) >= TOTAL

            await tmx_async_wait(all_stored, 30, what="every audit event in the stream")
            assert gw.publisher.spool.size == 0
            seen.extend(await fetch(1.0))  # nothing beyond: a replayed batch was deduplicated, not stored twice
            assert len(seen) == TOTAL and sorted(seen) == sorted(request_ids)  # all, and each once
            await psub.unsubscribe()
            await bus.close()


async def test_audit_events_go_to_a_jsonl_file_without_nats(asgi_server, tmp_path, tmx_async_wait):
    audit = tmp_path / "audit.jsonl"
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], audit_file=str(audit)) as (http, _):
            ids = []
            for _ in range(3):
                async with http.post("/v1/chat/completions", json=chat()) as resp:
                    ids.append(resp.headers["x-tmx-request-id"])
            await tmx_async_wait(lambda: audit.exists() and len(audit.read_text().splitlines()) == 3, 10,
                                 what="audit lines")
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [line["request_id"] for line in lines] == ids and all(line["tenant"] == "default" for line in lines)
