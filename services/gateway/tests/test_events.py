"""How a publish pass packs the gateway's events: per subject, as columns, nothing lost or reordered."""

import asyncio
import json

from tensormux.events.v1 import events_pb2
from tmx_eventbus import decode_all
from tmx_eventbus.codec import ID_HEADER, TYPE_HEADER
from tmx_gateway.events import PACK_SLICE, EventPublisher, FailedAttempt, RequestRecord
from tmx_gateway.metrics import GatewayMetrics


def served(i: int, backend: str, tenant: str = "acme", scores: dict | None = None) -> RequestRecord:
    return RequestRecord(f"r{i}", tenant, "k1", "m", "/v1/chat/completions", backend, 200, i % 2 == 0, 10.0 + i,
                         3.0, 100 + i, 5, 64, "prefix_aware", "longest prefix", "10.0.0.1", "", scores, 32, 1000 + i)


def test_a_pass_packs_one_message_per_subject_with_every_event_in_order():
    publisher = EventPublisher(None, "gw-1", GatewayMetrics(), 100, None)
    failed = FailedAttempt("r1", "b2", "m", "/v1/chat/completions", 503, "upstream 503", 4.0, 1001)
    items = [served(0, "b1", scores={"b1": 0.5, "b2": 1.5}), failed, served(1, "b1"), served(2, "b2", tenant="beta")]
    packed = {subject: decode_all(data, headers) for subject, data, headers in publisher._pack(items)}
    assert sorted(packed) == ["tmx.audit.acme", "tmx.audit.beta", "tmx.signal.backend.b1", "tmx.signal.backend.b2"]
    # outcomes: every attempt, the failed one included, in the order they finished
    assert [(o.request_id, o.http_status, o.error) for o in packed["tmx.signal.backend.b2"]] == \
        [("r1", 503, "upstream 503"), ("r2", 200, "")]
    first = packed["tmx.signal.backend.b1"][0]
    assert (first.gateway_id, first.occurred_at_unix_ms, first.latency_ms, first.ttft_ms, first.cached_tokens,
            first.streamed) == ("gw-1", 1000, 10.0, 3.0, 64, True)
    # audits: one per request (not per attempt), where it was finally served, with the routing scores
    audits = packed["tmx.audit.acme"]
    assert [(a.request_id, a.backend_id) for a in audits] == [("r0", "b1"), ("r1", "b1")]
    assert dict(audits[0].routing_scores) == {"b1": 0.5, "b2": 1.5} and not audits[1].routing_scores
    assert (audits[0].predicted_cached_tokens, audits[0].client_ip, audits[0].prompt_tokens) == (32, "10.0.0.1", 100)
    assert isinstance(audits[0], events_pb2.RequestAudited)
    ids = [e.event_id for events in packed.values() for e in events]
    assert len(set(ids)) == len(ids) == 7 and all(ids)


async def test_a_large_pass_is_packed_in_slices_that_let_requests_run_and_join_into_the_same_messages():
    publisher = EventPublisher(None, "gw-1", GatewayMetrics(), 10_000, None)
    items = [served(i, f"b{i % 3}", tenant=("acme", "beta")[i % 2], scores={"b0": float(i)} if i % 5 else None)
             for i in range(3 * PACK_SLICE + 7)]
    items.insert(PACK_SLICE + 1, FailedAttempt("r-failed", "b1", "m", "/v1/chat/completions", 503, "x", 4.0, 999))
    steps = 0

    async def ticker():  # counts the loop's turns while the pass packs
        nonlocal steps
        while True:
            steps += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = steps
    stepped = await publisher._pack_in_steps(items)
    other.cancel()
    assert steps - before >= 3  # the loop ran between each of the four slices
    whole = publisher._pack(items)
    assert [(subject, headers[TYPE_HEADER]) for subject, _, headers in stepped] == \
        [(subject, headers[TYPE_HEADER]) for subject, _, headers in whole]

    def rows(packed):  # every event of every message, but the event ids (fresh on each packing)
        out = {}
        for subject, data, headers in packed:
            events = decode_all(data, headers)
            for e in events:
                e.ClearField("event_id")
            out[subject] = events
        return out

    assert rows(stepped) == rows(whole)
    assert sum(len(events) for events in rows(stepped).values()) == 2 * len(items) - 1
    first = {subject: headers[ID_HEADER] for subject, _, headers in stepped}
    assert all(first[subject] == decode_all(data, headers)[0].event_id for subject, data, headers in stepped)


async def test_a_failure_cuts_the_linger_short_and_ordinary_events_wait_for_it(tmp_path, tmx_async_wait):
    audit = tmp_path / "audit.jsonl"
    publisher = EventPublisher(None, "gw-1", GatewayMetrics(), 100, None, audit_file=str(audit), linger_s=60.0,
                               urgent_linger_s=0.01)
    publisher.start()
    try:
        lines = lambda: audit.read_text().splitlines() if audit.exists() else []  # noqa: E731
        publisher.record(served(0, "b1"))  # after a quiet spell the first event goes at once
        await tmx_async_wait(lambda: len(lines()) == 1, 5.0, what="the first audit event")
        publisher.record(served(1, "b1"))  # lingers: the next pass is due in 60 s
        failed = served(2, "b1")
        failed.http_status = 502
        publisher.record(failed)  # a failure: the pass goes within urgent_linger_s, taking the waiting event too
        await tmx_async_wait(lambda: len(lines()) == 3, 5.0, what="the lingering pass, cut short by a failure")
        assert [json.loads(line)["http_status"] for line in lines()] == [200, 200, 502]
        publisher.record(served(3, "b1"))
        await publisher.flush(timeout=5.0)  # flushing does not wait out the linger either
        assert len(lines()) == 4
    finally:
        await publisher.stop()


async def test_stopping_during_a_sliced_pass_loses_none_of_its_events(tmp_path):
    audit = tmp_path / "audit.jsonl"
    publisher = EventPublisher(None, "gw-1", GatewayMetrics(), 10_000, None, audit_file=str(audit))
    publisher.start()
    for i in range(3 * PACK_SLICE):
        publisher.record(served(i, "b1"))
    await asyncio.sleep(0)  # the pass has begun: the queue is empty, the events are being packed
    await publisher.stop()
    assert [json.loads(line)["request_id"] for line in audit.read_text().splitlines()] == \
        [f"r{i}" for i in range(3 * PACK_SLICE)]
