import pytest

from tensormux.events.v1 import events_pb2
from tmx_eventbus import DecodeError, decode, encode, subjects


def test_subject_tokens_cannot_inject_wildcards_or_levels():
    assert subjects.audit("acme") == "tmx.audit.acme"
    assert subjects.audit("a.b>*c d") == "tmx.audit.a_b__c_d"
    assert subjects.health_backend("sim-1") == "tmx.health.backend.sim-1"
    with pytest.raises(ValueError):
        subjects.token("")


def test_encode_sets_headers_and_ids_and_decode_round_trips():
    event = events_pb2.RequestAudited(tenant="acme", model="m", http_status=200)
    data, headers = encode(event)
    assert headers["Tmx-Type"] == "tensormux.events.v1.RequestAudited"
    assert headers["Nats-Msg-Id"] == event.event_id and len(event.event_id) == 32
    assert event.occurred_at_unix_ms > 0
    assert decode(data, headers) == event


def test_encode_keeps_a_given_event_id():
    event = events_pb2.KernelJob(event_id="job-1", job_id="1")
    _, headers = encode(event)
    assert headers["Nats-Msg-Id"] == "job-1"


@pytest.mark.parametrize("headers, message", [
    (None, "missing"),
    ({"Tmx-Type": "tensormux.events.v1.Nope"}, "unknown event type"),
    ({"Tmx-Type": "tensormux.events.v1.RequestAudited"}, "bad"),
])
def test_decode_rejects_what_it_cannot_trust(headers, message):
    with pytest.raises(DecodeError, match=message):
        decode(b"\xff\xff\xff", headers)
