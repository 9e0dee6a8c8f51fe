import pytest

from tmx_errors import InvalidArgument, NotFound
from tmx_health.domain.directory import Directory
from tmx_health.domain.state_machine import BackendHealth, State, Thresholds

T = Thresholds(fall=3, rise=2)


def test_first_good_probe_makes_an_unknown_backend_healthy():
    b = BackendHealth("a", "http://a")
    t = b.observe(True, T)
    assert b.state == State.HEALTHY and (t.previous, t.current) == (State.UNKNOWN, State.HEALTHY)


def test_suspect_then_down_after_n_failures_and_back_through_recovering():
    b = BackendHealth("a", "http://a", state=State.HEALTHY)
    assert b.observe(False, T, error="ConnectionRefused").current == State.SUSPECT
    assert b.observe(False, T) is None and b.state == State.SUSPECT
    t = b.observe(False, T, error="ConnectionRefused")
    assert b.state == State.UNHEALTHY and "3 consecutive failed probes" in t.reason
    assert b.observe(True, T).current == State.RECOVERING
    assert b.observe(True, T).current == State.HEALTHY  # rise = 2 consecutive good probes


def test_a_good_probe_or_request_clears_suspicion():
    b = BackendHealth("a", "http://a", state=State.HEALTHY)
    b.observe(False, T)
    assert b.observe(True, T).current == State.HEALTHY
    b.observe(False, T, passive=True)
    assert b.state == State.SUSPECT and b.passive_failures == 1
    assert b.observe(True, T, passive=True).current == State.HEALTHY


def test_passive_failures_take_a_backend_down_but_only_probes_bring_it_back():
    b = BackendHealth("a", "http://a", state=State.HEALTHY)
    for _ in range(3):
        b.observe(False, T, error="HTTP 500", passive=True)
    assert b.state == State.UNHEALTHY and b.passive_failures == 3
    assert b.observe(True, T, passive=True) is None and b.state == State.UNHEALTHY
    assert b.observe(True, T).current == State.RECOVERING


def test_a_gray_failure_goes_down_although_probes_pass():
    b = BackendHealth("a", "http://a", state=State.HEALTHY)
    b.observe(False, T, error="HTTP 500", passive=True)
    assert b.observe(True, T) is None and b.state == State.SUSPECT  # /health is fine, requests are not
    b.observe(False, T, error="HTTP 500", passive=True)
    b.observe(True, T)
    assert b.observe(False, T, error="HTTP 500", passive=True).current == State.UNHEALTHY
    assert b.observe(True, T).current == State.RECOVERING  # then probes alone bring it back


def test_a_failure_while_recovering_goes_straight_back_down():
    b = BackendHealth("a", "http://a", state=State.UNHEALTHY)
    b.observe(True, T)
    assert b.state == State.RECOVERING
    assert b.observe(False, T).current == State.UNHEALTHY


def test_draining_holds_until_undrained_then_recovers_through_probes():
    b = BackendHealth("a", "http://a", state=State.HEALTHY)
    assert b.drain(True).current == State.DRAINING
    assert b.observe(False, T) is None and b.observe(True, T) is None and b.state == State.DRAINING
    assert b.drain(False).current == State.RECOVERING
    b.observe(True, T)
    assert b.observe(True, T).current == State.HEALTHY


def test_per_backend_thresholds_override_the_defaults():
    b = BackendHealth("a", "http://a", state=State.HEALTHY, thresholds=Thresholds(fall=1, rise=1))
    assert b.observe(False, T).current == State.UNHEALTHY
    assert b.observe(True, T).current == State.HEALTHY


def test_thresholds_must_be_positive():
    with pytest.raises(ValueError):
        Thresholds(fall=0)


def test_directory_validates_and_reports_models():
    d = Directory({"m1": ("small",)})
    d.register("a", "http://a/", ("m1", "m2"))
    d.register("b", "http://b", ("m1",)).state = State.HEALTHY
    assert d.get("a").url == "http://a"
    assert [(m.name, m.backend_ids, m.healthy, m.aliases) for m in d.models()] == [
        ("m1", ("a", "b"), 1, ("small",)), ("m2", ("a",), 0, ())]
    with pytest.raises(InvalidArgument, match="url"):
        d.register("c", "ftp://c", ())
    with pytest.raises(InvalidArgument, match="id"):
        d.register("c.d", "http://c", ())
    with pytest.raises(NotFound):
        d.remove("zzz")
