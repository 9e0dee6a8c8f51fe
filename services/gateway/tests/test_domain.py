import json
import random

import pytest

from tmx_config import FleetFile
from tmx_config.fleet import BackendSpec, ModelSpec, TenantSpec
from tmx_gateway.domain.engine_costs import REFERENCE
from tmx_gateway.domain.fleet import Attempt, Backend, FleetView, State
from tmx_gateway.domain.metering import StreamMeter, usage_from_body
from tmx_gateway.domain.routing import RouteRequest, build_policy
from tmx_gateway.domain.tenancy import Forbidden, Tenancy, Unauthorized

REQ = RouteRequest(model="m", endpoint="/v1/chat/completions")


def fleet_file(**kw):
    return FleetFile(
        backends=(BackendSpec(id="a", url="http://a", models=("m",)), BackendSpec(id="b", url="http://b", models=("m",)),
                  BackendSpec(id="c", url="http://c", models=("other",))),
        models=(ModelSpec(name="m", aliases=("alias",), context_length=4096),), **kw)


def test_least_inflight_picks_the_least_loaded_and_spreads_ties():
    policy = build_policy("least_inflight")
    a, b, c = Backend("a", "u", ("m",), inflight=3), Backend("b", "u", ("m",), inflight=1), Backend("c", "u", ("m",), inflight=2)
    decision = policy.choose(REQ, [a, b, c])
    assert decision.backend_id == "b" and decision.scores == {"a": 3, "b": 1, "c": 2}
    idle = [Backend("a", "u", ("m",)), Backend("b", "u", ("m",))]
    assert {policy.choose(REQ, idle).backend_id for _ in range(4)} == {"a", "b"}


def test_least_inflight_honours_weights():
    policy = build_policy("least_inflight")
    big, small = Backend("big", "u", ("m",), weight=4, inflight=4), Backend("small", "u", ("m",), weight=1, inflight=2)
    assert policy.choose(REQ, [big, small]).backend_id == "big"


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="least_inflight"):
        build_policy("magic")


def test_fleet_candidates_follow_model_health_and_local_ejection():
    fleet = FleetView()
    fleet.apply_fleet(fleet_file())
    assert [b.id for b in fleet.candidates("m", now=0)] == ["a", "b"]
    fleet.set_state("a", State.UNHEALTHY)
    assert [b.id for b in fleet.candidates("m", now=0)] == ["b"]
    fleet.eject("b", until=10)
    assert fleet.candidates("m", now=5) == [] and [b.id for b in fleet.candidates("m", now=10)] == ["b"]
    assert [b.id for b in fleet.candidates("m", now=10, exclude={"b"})] == []


def test_fleet_resolves_aliases_and_learns_dynamic_backends():
    fleet = FleetView()
    fleet.apply_fleet(fleet_file())
    assert fleet.resolve_model("alias") == "m" and fleet.resolve_model("nope") is None
    assert fleet.set_state("new", State.HEALTHY, url="http://n", models=("m",))
    assert not fleet.set_state("ghost", State.HEALTHY)
    entry = next(e for e in fleet.catalogue() if e.name == "m")
    assert entry.aliases == ("alias",) and entry.backend_ids == ("a", "b", "new") and entry.context_length == 4096


def test_reloading_the_fleet_keeps_live_state():
    fleet = FleetView()
    fleet.apply_fleet(fleet_file())
    sent = fleet.backends["a"]
    first, second = Attempt(sent, 100, 10), Attempt(sent, 50, 5)  # attempts in flight across the reload
    fleet.set_state("a", State.UNHEALTHY)
    fleet.apply_fleet(fleet_file())
    a = fleet.backends["a"]
    assert (a.inflight, a.prefilling_prompt_tokens, a.state) == (2, 150, State.UNHEALTHY)
    first.prefilled()
    first.ended()  # the attempts end on the backend they were sent to
    second.ended()
    assert (a.inflight, a.inflight_prompt_tokens, a.prefilling_prompt_tokens, a.inflight_output_tokens) == (0, 0, 0, 0)


def test_an_attempt_takes_its_work_back_once_however_often_it_is_reported():
    b = Backend("b", "u", ("m",))
    streamed, plain = Attempt(b, 1000, 64), Attempt(b, 400, 16)
    assert (b.inflight, b.inflight_prompt_tokens, b.prefilling_prompt_tokens, b.inflight_output_tokens) == \
        (2, 1400, 1400, 80)
    streamed.prefilled()
    streamed.prefilled()  # every chunk of a stream may say so
    assert (b.inflight_prompt_tokens, b.prefilling_prompt_tokens) == (1400, 400)  # prefilled, still decoding
    plain.ended()
    plain.ended()
    plain.prefilled()  # a presumption timer firing after the end changes nothing
    assert (b.inflight, b.inflight_prompt_tokens, b.prefilling_prompt_tokens, b.inflight_output_tokens) == \
        (1, 1000, 0, 64)
    streamed.decoded(40)
    streamed.decoded(30)  # counts only ever grow: a smaller one changes nothing
    assert b.inflight_output_tokens == 24  # 64 - 40 still owed
    streamed.decoded(500)  # more events than max_tokens (a usage chunk, say): never below zero
    assert b.inflight_output_tokens == 0
    streamed.ended()
    assert (b.inflight, b.inflight_prompt_tokens, b.prefilling_prompt_tokens, b.inflight_output_tokens) == (0, 0, 0, 0)


def test_an_attempt_queues_for_prefill_only_what_the_backend_is_not_expected_to_have_cached():
    b = Backend("b", "u", ("m",))
    warm = Attempt(b, 1000, 16, cached_tokens=800)
    assert (b.inflight_prompt_tokens, b.prefilling_prompt_tokens) == (1000, 200)
    assert warm.prefill_eta_s == pytest.approx((200 * REFERENCE.prefill_ms_per_token + REFERENCE.step_ms) / 1000)
    Attempt(b, 100, 16, cached_tokens=500)  # a prediction beyond the prompt queues nothing, never less
    assert b.prefilling_prompt_tokens == 200
    warm.prefilled()
    assert (b.inflight_prompt_tokens, b.prefilling_prompt_tokens) == (1100, 0)


def test_a_prompts_prefill_eta_counts_the_prefill_queued_ahead_of_it():
    b = Backend("b", "u", ("m",))
    alone = Attempt(b, 8000, 16)
    behind = Attempt(b, 8000, 16)  # 8000 tokens queued ahead: at ~8000 tok/s, a second later
    p, step, per_seq = REFERENCE.prefill_ms_per_token, REFERENCE.step_ms, REFERENCE.step_ms_per_seq
    assert alone.prefill_eta_s == pytest.approx((8000 * p + step) / 1000)
    assert behind.prefill_eta_s == pytest.approx((16000 * p + step + per_seq) / 1000)  # one sequence ahead
    alone.prefilled()  # it decodes on: its prompt no longer queued, it is still a sequence there
    assert Attempt(b, 8000, 16).prefill_eta_s == pytest.approx((16000 * p + step + 2 * per_seq) / 1000)


def test_usage_is_read_in_each_apis_shape():
    read = lambda usage: (lambda u: (u.prompt_tokens, u.completion_tokens, u.cached_tokens))(  # noqa: E731
        usage_from_body(json.dumps({"usage": usage}).encode()))
    assert read({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                 "prompt_tokens_details": {"cached_tokens": 4}}) == (7, 3, 4)  # chat and completions
    assert read({"prompt_tokens": 12, "total_tokens": 12}) == (12, 0, 0)  # embeddings
    assert read({"input_tokens": 7, "output_tokens": 3, "input_tokens_details": {"cached_tokens": 2}}) == (7, 3, 2)
    assert read({"total_tokens": 30}) == (30, 0, 0)  # a rerank (vLLM's, Cohere's): all input
    assert read({"completion_tokens": 3}) == (0, 3, 0)


def test_metering_reads_usage_from_bodies_and_split_sse_chunks():
    body = b'{"usage": {"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}}'
    usage = usage_from_body(body)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (7, 3, 4) and usage.cached_reported
    # whether the backend said what it had cached, a cached 0 included, or said nothing of it
    assert [usage_from_body(b'{"usage": {"prompt_tokens": 7%s}}' % details).cached_reported for details in
            (b', "prompt_tokens_details": {"cached_tokens": 0}', b'', b', "prompt_tokens_details": null',
             b', "prompt_tokens_details": {"cached_tokens": null}', b', "prompt_tokens_details": {}')] == \
        [True, False, False, False, False]
    assert usage_from_body(b"not json").prompt_tokens == 0
    stream = (b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
              b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\ndata: [DONE]\n\n')
    meter = StreamMeter()
    forwarded = []
    for i in range(0, len(stream), 7):  # arbitrary chunk boundaries
        out = meter.feed(stream[i:i + 7])
        assert out == b"" or out.endswith(b"\n\n")  # only whole events are handed on
        forwarded.append(out)
    assert b"".join(forwarded) == stream and meter.pending == b""  # byte for byte, nothing held back
    assert meter.done and meter.result().prompt_tokens == 5 and not meter.result().estimated
    counting = StreamMeter()
    counting.feed(b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\ndata: {"choices":[{"delta":{"content":"x"}}]}\n\n')
    assert counting.result().completion_tokens == 1 and counting.result().estimated


def test_an_event_in_many_chunks_is_gathered_not_copied_again_and_again():
    """8 MB of one event in 1 KiB chunks: each chunk used to be appended by copying all held so far (~32 GB
    copied, minutes of a gateway's loop); gathered in place, it is whole when its blank line comes."""
    meter, event = StreamMeter(), b"data: " + b"x" * (8 << 20)
    for at in range(0, len(event), 1024):
        assert meter.feed(event[at:at + 1024]) == b""
    assert meter.pending_size == len(event) and meter.pending == event
    assert meter.feed(b"\n") == b"" and meter.feed(b"\ndata: {") == event + b"\n\n"
    assert meter.pending == b"data: {" and meter.events == 1


def _metered_one_by_one(stream: bytes) -> tuple[int, bool, tuple | None]:
    """What a meter must find in a whole stream, event by event: the answer's data events, whether `[DONE]`
    ended it, and the last usage that was not null."""
    events, done, usage = 0, False, None
    for event in stream.split(b"\n\n")[:-1]:
        event = event.lstrip(b"\n")
        if not event.startswith(b"data:"):
            continue
        data = event[5:].strip()
        if data == b"[DONE]":
            done = True
            continue
        events += 1
        found = json.loads(data).get("usage")
        if found:
            usage = (found["prompt_tokens"], found["completion_tokens"])
    return events, done, usage


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
@pytest.mark.parametrize("seed", range(40))
def test_the_stream_meter_counts_in_bulk_what_a_reading_event_by_event_finds(seed, crlf):
    """The meter counts events with substring counts and reads only the events that can matter; whatever the
    chunking, it must find what reading every event finds: content that mentions [DONE] or "usage" as text,
    null usage on every chunk (OpenAI's include_usage), comments, extra blank lines, no [DONE] at all; with
    lines ending in LF or, as servers built on sse-starlette end them, CRLF (passed on as they came)."""
    rng = random.Random(seed)
    parts = []
    for i in range(rng.randrange(0, 12)):
        kind = rng.random()
        if kind < 0.1:
            parts.append(b": keep-alive\n\n")
            continue
        chunk = {"choices": [{"delta": {"content": rng.choice(["a", "[DONE]", '"usage": {}', "data: x"])}}]}
        if rng.random() < 0.5:
            chunk["usage"] = None
        elif rng.random() < 0.2:
            chunk["usage"] = {"prompt_tokens": rng.randrange(1, 99), "completion_tokens": i}
        spacing = rng.choice([" ", "", "  "])
        parts.append(b"\n" * rng.choice([0, 0, 0, 1, 2]) + f"data:{spacing}".encode() +
                     json.dumps(chunk, separators=rng.choice([(",", ":"), (", ", ": ")])).encode() + b"\n\n")
    if rng.random() < 0.8:
        parts.append(b"data: [DONE]\n\n")
    stream = b"".join(parts)
    sent = stream.replace(b"\n", b"\r\n") if crlf else stream
    meter, forwarded, at = StreamMeter(), [], 0
    while at < len(sent):
        step = rng.choice([1, 3, 17, 64, len(sent)])
        out = meter.feed(sent[at:at + step])
        assert out == b"" or out.endswith(b"\r\n\r\n" if crlf else b"\n\n")  # whole events only
        forwarded.append(out)
        at += step
    assert b"".join(forwarded) == sent and meter.pending == b""
    events, done, usage = _metered_one_by_one(stream)
    assert (meter.events, meter.done) == (events, done)
    result = meter.result()
    if usage is None:
        assert result.estimated and result.completion_tokens == max(events - 1, 0)
    else:
        assert (result.prompt_tokens, result.completion_tokens) == usage and not result.estimated


@pytest.mark.parametrize("content", [b"\\ud800 half a surrogate", b"caf\\u00e9 \xe2\x98\x95"])
@pytest.mark.parametrize("extra", [b"", b', "temperature": NaN', b', "logprob": -Infinity', b', "x": 1e400'])
def test_usage_is_read_from_answers_the_faster_parser_refuses(content, extra):
    """orjson reads usage ~4x faster than the standard library; what it refuses and the standard library accepts
    (lone surrogates, NaN, Infinity, numbers beyond a double) must not cost an answer its metering."""
    body = (b'{"choices": [{"message": {"content": "' + content + b'"}}]' + extra +
            b', "usage": {"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}}')
    usage = usage_from_body(body)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (7, 3, 4)
    meter = StreamMeter()
    meter.feed(b"data: " + body + b"\n\n")
    assert meter.result().prompt_tokens == 7 and not meter.result().estimated


def test_tenancy_maps_keys_and_rejects_unknown_ones():
    open_gateway = Tenancy(fleet_file())
    assert open_gateway.identify(None).tenant == "default"
    closed = Tenancy(fleet_file(tenants=(TenantSpec(name="acme", api_keys=("k1",)),)))
    caller = closed.identify("Bearer k1")
    assert caller.tenant == "acme" and caller.api_key_id and "k1" not in caller.api_key_id
    with pytest.raises(Unauthorized, match="invalid"):
        closed.identify("Bearer nope")
    with pytest.raises(Unauthorized, match="missing"):
        closed.identify(None)


def test_a_tenant_may_be_held_to_some_models_named_or_aliased():
    tenants = (TenantSpec(name="acme", api_keys=("k1", "k2"), models=("alias", "discovered")),
               TenantSpec(name="free", api_keys=("k3",)))
    tenancy = Tenancy(fleet_file(tenants=tenants))
    acme = tenancy.identify("Bearer k1")
    assert acme.models == {"m", "discovered"}  # the alias stands for its model; an undeclared name for itself
    assert acme.may_use("m") and acme.may_use("discovered") and not acme.may_use("other")
    assert tenancy.identify("Bearer k2").models == acme.models and tenancy.identify("Bearer k2") != acme  # own key id
    assert tenancy.identify("Bearer k3").may_use("other")  # no list: every model
    assert tenancy.admit_reader("Bearer k1", "adm") == {"m", "discovered"}
    assert tenancy.admit_reader("Bearer k3", "adm") == tenancy.admit_reader("Bearer adm", "adm") == frozenset()
    with pytest.raises(ValueError, match="not empty strings"):
        TenantSpec(name="x", models=(" ",))


def test_a_models_fallbacks_are_other_models_named_or_aliased():
    fleet = FleetView()
    fleet.apply_fleet(FleetFile(backends=fleet_file().backends,
                                models=(ModelSpec(name="m", aliases=("alias",)),
                                        ModelSpec(name="other", fallbacks=("alias", "m", "discovered")))))
    assert fleet.fallbacks("other") == ("m", "discovered")  # the alias is its model, named once
    assert fleet.fallbacks("m") == ()
    with pytest.raises(ValueError, match="its own fallback"):
        ModelSpec(name="m", aliases=("a",), fallbacks=("a",))
    with pytest.raises(ValueError, match="named twice"):
        ModelSpec(name="m", fallbacks=("x", "x"))
    with pytest.raises(ValueError, match="not empty strings"):
        ModelSpec(name="m", fallbacks=("",))


def test_admin_views_answer_to_the_admin_key_and_the_catalogue_to_any_key():
    open_gateway = Tenancy(fleet_file())
    closed = Tenancy(fleet_file(tenants=(TenantSpec(name="acme", api_keys=("k1",)),)))
    open_gateway.admit_admin(None, "")  # open gateway, no admin key: open
    open_gateway.admit_reader(None, "adm")
    open_gateway.admit_admin("Bearer adm", "adm")
    with pytest.raises(Unauthorized, match="missing admin key"):
        open_gateway.admit_admin(None, "adm")  # an admin key, once set, is required even on an open gateway
    with pytest.raises(Forbidden, match="TMX_GATEWAY_ADMIN_KEY"):
        closed.admit_admin("Bearer k1", "")  # tenants and no admin key: a tenant's key must not read the fleet
    with pytest.raises(Unauthorized, match="invalid admin key"):
        closed.admit_admin("Bearer k1", "adm")
    closed.admit_admin("Bearer adm", "adm")
    closed.admit_reader("Bearer k1", "")
    closed.admit_reader("Bearer adm", "adm")
    for authorization in (None, "Bearer nope", "Bearer "):
        with pytest.raises(Unauthorized):
            closed.admit_reader(authorization, "")  # an empty admin key matches nothing, not an empty bearer
