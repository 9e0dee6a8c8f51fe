"""How a publish pass packs the gateway's events: per subject, as columns, nothing lost or reordered."""

import json

from tensormux.events.v1 import events_pb2
from tmx_eventbus import decode_all
from tmx_gateway.events import EventPublisher, FailedAttempt, RequestRecord
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
