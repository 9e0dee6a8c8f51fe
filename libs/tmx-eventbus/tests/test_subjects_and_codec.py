import pytest

from tensormux.events.v1 import events_pb2
from tmx_eventbus import (DecodeError, decode, decode_rows, encode, encode_batch, encode_columns, row_type,
                          subjects)


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


def test_event_ids_are_unique_32_hex_characters_and_differ_after_fork():
    import os

    from tmx_eventbus import new_event_id, new_event_ids

    ids = {new_event_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    batch = new_event_ids(500)  # a batch reserves its own range: no overlap with single ids before or after
    ids |= set(batch) | {new_event_id() for _ in range(10)}
    assert len(batch) == 500 and len(ids) == 10_510 and all(len(i) == 32 for i in batch)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child writes the id it draws next; the parent draws its own
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child[:20] != new_event_id()[:20]  # reseeded in the child: no id can repeat the parent's


def test_a_batch_round_trips_its_events_in_order_with_their_own_ids():
    from tmx_eventbus import decode_all, encode_batch

    events = [events_pb2.RequestAudited(request_id=f"r{i}", tenant="acme") for i in range(3)]
    data, headers = encode_batch(events)
    assert headers["Tmx-Type"] == "tensormux.events.v1.EventBatch"
    out = decode_all(data, headers)
    assert [e.request_id for e in out] == ["r0", "r1", "r2"]
    assert len({e.event_id for e in out} | {headers["Nats-Msg-Id"]}) == 4  # each event and the batch
    single, single_headers = encode(events_pb2.RequestOutcome(request_id="x"))
    assert [e.request_id for e in decode_all(single, single_headers)] == ["x"]


def test_a_batch_holds_one_type_and_rejects_bad_contents():
    from tmx_eventbus import decode_all, encode_batch

    with pytest.raises(ValueError, match="one type"):
        encode_batch([events_pb2.RequestAudited(), events_pb2.RequestOutcome()])
    with pytest.raises(ValueError, match="at least one"):
        encode_batch([])
    bad = events_pb2.EventBatch(event_type="tensormux.events.v1.Nope", events=[b""])
    data, headers = encode(bad)
    with pytest.raises(DecodeError, match="unknown event type"):
        decode_all(data, headers)
    garbled = events_pb2.EventBatch(event_type="tensormux.events.v1.RequestAudited", events=[b"\xff\xff\xff"])
    data, headers = encode(garbled)
    with pytest.raises(DecodeError, match="bad tensormux.events.v1.RequestAudited payload in a batch"):
        decode_all(data, headers)


def test_columns_round_trip_every_field_of_every_event():
    from tmx_eventbus import decode_all, encode_columns

    events = [
        events_pb2.RequestAudited(event_id="e0", occurred_at_unix_ms=1, request_id="r0", tenant="acme", http_status=200,
                                  streamed=True, latency_ms=1.5, routing_scores={"a": 0.5, "b": 2.0},
                                  predicted_cached_tokens=7),
        events_pb2.RequestAudited(event_id="e1", occurred_at_unix_ms=2, request_id="r1", tenant="acme", http_status=502,
                                  client_ip="10.0.0.1"),  # no scores
        events_pb2.RequestAudited(event_id="e2", occurred_at_unix_ms=3, request_id="r2", routing_scores={"c": -1.0}),
    ]
    fields = [f.name for f in events_pb2.RequestAudited.DESCRIPTOR.fields]
    columns = {name: [getattr(e, name) for e in events] for name in fields}
    columns["routing_scores"] = [dict(e.routing_scores) or None for e in events]
    data, headers = encode_columns(events_pb2.RequestAudited, columns)
    assert headers == {"Tmx-Type": "tensormux.events.v1.RequestAuditedColumns", "Nats-Msg-Id": "e0"}
    assert decode_all(data, headers) == events
    # as rows: the same values, field by field, with no protobuf built per event
    rows = decode_rows(data, headers, events_pb2.RequestAudited)
    assert [type(r) for r in rows] == [row_type(events_pb2.RequestAudited)] * 3
    assert [tuple(r) for r in rows] == [tuple(dict(getattr(e, f)) if f == "routing_scores" else getattr(e, f)
                                              for f in fields) for e in events]
    assert (rows[0].routing_scores, rows[1].routing_scores, rows[1].client_ip) == ({"a": 0.5, "b": 2.0}, {}, "10.0.0.1")


def test_rows_come_from_every_shape_of_message_and_only_of_the_asked_type():
    outcomes = [events_pb2.RequestOutcome(event_id=f"e{i}", backend_id="b1", http_status=200 + i, latency_ms=i / 2)
                for i in range(3)]
    expected = [(f"e{i}", "b1", 200 + i, i / 2) for i in range(3)]
    pick = lambda rows: [(r.event_id, r.backend_id, r.http_status, r.latency_ms) for r in rows]  # noqa: E731
    assert pick(decode_rows(*encode(outcomes[0]), events_pb2.RequestOutcome)) == expected[:1]
    assert pick(decode_rows(*encode_batch(outcomes), events_pb2.RequestOutcome)) == expected
    assert decode_rows(*encode(events_pb2.BackendStateChanged(backend_id="b1")), events_pb2.RequestOutcome) == []
    assert decode_rows(*encode_batch(outcomes), events_pb2.RequestAudited) == []
    # from columns, a column no event set (an older producer) is the field's default in every row
    data, headers = encode_columns(events_pb2.RequestOutcome, {"event_id": ["a", "b"], "http_status": [200, 503]})
    assert [(r.event_id, r.http_status, r.model, r.latency_ms, r.streamed) for r in
            decode_rows(data, headers, events_pb2.RequestOutcome)] == [("a", 200, "", 0.0, False),
                                                                         ("b", 503, "", 0.0, False)]
    ragged = events_pb2.RequestOutcomeColumns(event_id=["a", "b"], model=["m"])
    with pytest.raises(DecodeError, match="'model' has 1 values for 2 events"):
        decode_rows(ragged.SerializeToString(), {"Tmx-Type": "tensormux.events.v1.RequestOutcomeColumns"},
                    events_pb2.RequestOutcome)


def test_columns_reject_ragged_input_and_tolerate_absent_columns():
    from tmx_eventbus import decode_all, encode_columns

    with pytest.raises(ValueError, match="'model' has 1 values for 2 events"):
        encode_columns(events_pb2.RequestOutcome, {"event_id": ["a", "b"], "model": ["m"]})
    with pytest.raises(ValueError, match="event_id"):
        encode_columns(events_pb2.RequestOutcome, {"model": ["m"]})
    # a column no event set (an older producer) decodes to the field's default
    data, headers = encode_columns(events_pb2.RequestOutcome, {"event_id": ["a", "b"], "http_status": [200, 503]})
    assert [(e.event_id, e.http_status, e.model) for e in decode_all(data, headers)] == [("a", 200, ""), ("b", 503, "")]
    ragged = events_pb2.RequestOutcomeColumns(event_id=["a", "b"], model=["m"])
    with pytest.raises(DecodeError, match="'model' has 1 values for 2 events"):
        decode_all(ragged.SerializeToString(), {"Tmx-Type": "tensormux.events.v1.RequestOutcomeColumns"})
    uneven = events_pb2.RequestAuditedColumns(event_id=["a"], routing_scores_count=[2], routing_scores_keys=["x"],
                                              routing_scores_values=[1.0])
    with pytest.raises(DecodeError, match="'routing_scores' does not add up"):
        decode_all(uneven.SerializeToString(), {"Tmx-Type": "tensormux.events.v1.RequestAuditedColumns"})
