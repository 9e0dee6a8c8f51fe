"""The view a gateway's workers share: peers' load added into the backends and taken out again, prefixes and
tenants' spend carried once, served and failed counts summed, notes only when there is news."""

from tmx_config import BackendSpec, FleetFile
from tmx_gateway.domain.fleet import Attempt, FleetView
from tmx_gateway.domain.metering import Usage
from tmx_gateway.domain.peers import PeerView
from tmx_gateway.peering import decode_note, encode_note


def fleet(*ids: str, share_costs: bool = False) -> FleetView:
    view = FleetView(share_costs=share_costs)
    view.apply_fleet(FleetFile(backends=tuple(BackendSpec(id=i, url=f"http://{i}", models=("m",)) for i in ids)))
    return view


def note_from(peer: str, load: dict, **extra) -> dict:
    return {"from": peer, "domain": PeerView("x").hash_domain, "load": load, **extra}


class Recorder:
    def __init__(self) -> None:
        self.prefixes, self.debits = [], []

    def apply(self, view: PeerView, note: dict, f: FleetView, now: float = 0.0) -> bool:
        return view.apply(note, f, now, lambda *a: self.prefixes.append(a), lambda *a: self.debits.append(a))


def test_a_peers_load_is_added_to_the_backends_and_replaced_by_its_next_snapshot():
    f, view, rec = fleet("a", "b"), PeerView("w0"), Recorder()
    Attempt(f.backends["a"], 100, 50)  # this worker's own request
    assert rec.apply(view, note_from("w1", {"a": [2, 300, 200, 40], "b": [1, 10, 0, 5]}), f)
    a, b = f.backends["a"], f.backends["b"]
    assert (a.inflight, a.inflight_prompt_tokens, a.prefilling_prompt_tokens, a.inflight_output_tokens) == \
        (3, 400, 300, 90)
    assert (b.inflight, b.inflight_output_tokens) == (1, 5)
    rec.apply(view, note_from("w1", {"a": [1, 100, 0, 10]}), f)  # b finished there; a shrank
    assert (a.inflight, a.inflight_prompt_tokens, a.prefilling_prompt_tokens, a.inflight_output_tokens) == \
        (2, 200, 100, 60)
    assert (b.inflight, b.inflight_prompt_tokens, b.inflight_output_tokens) == (0, 0, 0)


def test_own_load_excludes_what_peers_added_so_peers_never_echo_each_other():
    f, view, rec = fleet("a"), PeerView("w0"), Recorder()
    Attempt(f.backends["a"], 100, 50)
    rec.apply(view, note_from("w1", {"a": [5, 500, 500, 500]}), f)
    rec.apply(view, note_from("w2", {"a": [1, 1, 1, 1]}), f)
    assert view.own_load(f) == {"a": (1, 100, 100, 50)}
    assert view.note(f, 0.0)["load"] == {"a": (1, 100, 100, 50)}


def test_a_silent_peer_is_forgotten_and_its_load_taken_out():
    f, view, rec = fleet("a"), PeerView("w0", silent_after_s=1.0), Recorder()
    rec.apply(view, note_from("w1", {"a": [4, 40, 40, 40]}), f, now=10.0)
    rec.apply(view, note_from("w2", {"a": [1, 1, 1, 1]}), f, now=10.8)
    assert view.forget_silent(f, 10.9) == [] and f.backends["a"].inflight == 5
    assert view.forget_silent(f, 11.05) == ["w1"]
    assert view.peers == ["w2"] and f.backends["a"].inflight == 1 and f.backends["a"].inflight_output_tokens == 1


def test_a_backend_replaced_by_a_fleet_reload_never_loses_a_share_it_did_not_get():
    f, view, rec = fleet("a"), PeerView("w0"), Recorder()
    rec.apply(view, note_from("w1", {"a": [3, 30, 30, 30]}), f)
    f.apply_fleet(FleetFile(backends=(BackendSpec(id="a", url="http://a-moved", models=("m",)),)))
    rec.apply(view, note_from("w1", {"a": [1, 10, 0, 5]}), f)
    a = f.backends["a"]
    assert (a.inflight, a.inflight_prompt_tokens, a.prefilling_prompt_tokens, a.inflight_output_tokens) == (1, 10, 0, 5)
    assert view.own_load(f) == {}


def test_own_and_malformed_notes_are_ignored():
    f, view, rec = fleet("a"), PeerView("w0"), Recorder()
    assert not rec.apply(view, note_from("w0", {"a": [9, 9, 9, 9]}), f)
    assert not rec.apply(view, {"from": "w1", "load": [1]}, f)
    assert not rec.apply(view, {"load": {}}, f)
    rec.apply(view, note_from("w1", {"a": [1, 2], "zz": [1, 1, 1, 1]}), f)  # a short entry, an unknown backend
    assert f.backends["a"].inflight == 0 and view.peers == ["w1"]


def test_prefixes_and_spend_travel_once_and_only_prefixes_need_the_same_hash_domain():
    f, view, rec = fleet("a"), PeerView("w0"), Recorder()
    view.routed_prefix("m", "prefix_aware", "a", [11, 12])
    view.routed_prefix("m", "prefix_aware", "a", [])  # a prompt shorter than a block: nothing to share
    view.spent("acme", 1, 300)
    view.spent("acme", 0, -100)
    note = view.note(f, 0.0)
    assert note["prefixes"] == [["m", "prefix_aware", "a", [11, 12]]] and note["spent"] == {"acme": [1, 200]}
    assert view.note(f, 0.01) is None  # nothing new and no heartbeat due

    other = PeerView("w1")
    rec.apply(other, note, f)
    assert rec.prefixes == [("m", "prefix_aware", "a", [11, 12])] and rec.debits == [("acme", 1, 200)]
    stranger = Recorder()
    stranger.apply(PeerView("w2", hash_domain=note["domain"] + "-v2"), note, f)
    assert stranger.prefixes == [] and stranger.debits == [("acme", 1, 200)]


def test_what_a_workers_answers_showed_of_a_backends_speed_its_peers_learn_once():
    mine, theirs = fleet("a", "b", share_costs=True), fleet("a", "b", share_costs=True)
    view, other, rec = PeerView("w0"), PeerView("w1"), Recorder()
    view.note(mine, 0.0)  # the first heartbeat
    streamed = Attempt(mine.backends["a"], 2000, 16, now=1.0)
    answered = Attempt(mine.backends["a"], 500, 64, now=1.0)
    streamed.first_token(1.9)  # 2000 tokens ahead: ~250 ms on the reference, 900 here
    streamed.learn()  # the stream ended without usage
    answered.answered(3.0, Usage(completion_tokens=64))
    note = view.note(mine, 0.01)  # no heartbeat due and the same load: only the observations make it news
    assert set(note["costs"]) == {"a"} and len(note["costs"]["a"]) == 2
    assert rec.apply(other, decode_note(encode_note(note)), theirs)  # as it travels
    a, seen = theirs.backends["a"].costs, mine.backends["a"].costs
    assert (a.samples, a.factor) == (2, seen.factor) and seen.factor > 1.5  # learned: slower than the reference
    assert theirs.backends["b"].costs.samples == 0 and a.outbox == []  # nothing to echo back
    assert "costs" not in view.note(mine, 0.3)  # handed over once
    rec.apply(other, note_from("w0", {}, costs={"a": [[0, 1.0], [0, "x", 1.0], [0, 250.0, 900.0]], "zz": [[0, 1.0, 1.0]],
                                                "b": "nope"}), theirs)
    assert a.samples == 3  # only the well-formed entry, for a backend it knows


def test_notes_go_out_when_load_changes_or_a_heartbeat_is_due():
    f, view = fleet("a"), PeerView("w0", heartbeat_s=0.25)
    assert view.note(f, 0.0) == {"from": "w0", "domain": view.hash_domain, "load": {},  # the first: a heartbeat
                                 "outcomes": {}}
    assert view.note(f, 0.1) is None
    attempt = Attempt(f.backends["a"], 10, 5)
    assert view.note(f, 0.11)["load"] == {"a": (1, 10, 10, 5)}
    attempt.ended()
    assert view.note(f, 0.12)["load"] == {}
    assert view.note(f, 0.2) is None
    assert view.note(f, 0.38) is not None


def test_served_and_failed_counts_are_the_whole_gateways_and_a_silent_peers_drop_out():
    f, view, rec = fleet("a", "b"), PeerView("w0", silent_after_s=1.0), Recorder()
    f.backends["a"].served, f.backends["a"].failed = 5, 1
    peer_fleet = fleet("a", "b")
    peer_fleet.backends["a"].served, peer_fleet.backends["b"].failed = 7, 2
    peer = PeerView("w1")
    note = decode_note(encode_note(peer.note(peer_fleet, 0.0)))  # as it travels over NATS
    assert note["outcomes"] == {"a": [7, 0], "b": [0, 2]}
    rec.apply(view, note, f, now=10.0)
    assert view.outcomes(f.backends["a"]) == (12, 1) and view.outcomes(f.backends["b"]) == (0, 2)
    peer_fleet.backends["a"].served = 9  # counts are snapshots: the next note replaces the last, never adds to it
    rec.apply(view, decode_note(encode_note(peer.note(peer_fleet, 0.5))), f, now=10.5)
    assert view.outcomes(f.backends["a"]) == (14, 1)
    rec.apply(view, note_from("w2", {}, outcomes={"a": [1, -1], "b": [1], "c": "x"}), f, now=10.6)  # malformed
    assert view.outcomes(f.backends["a"]) == (14, 1) and view.outcomes(f.backends["b"]) == (0, 2)
    assert view.forget_silent(f, 11.55) == ["w1"]
    assert view.outcomes(f.backends["a"]) == (5, 1) and view.outcomes(f.backends["b"]) == (0, 0)
