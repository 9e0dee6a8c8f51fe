import pytest

from tmx_errors import InvalidArgument, NotFound
from tmx_health.domain.directory import Directory
from tmx_health.domain.state_machine import BackendHealth, State, Thresholds

T = Thresholds(fall=3, rise=2)


def test_first_success_makes_an_unknown_backend_healthy():
    b = BackendHealth("a", "http://a")
    t = b.observe(True, T)
    assert b.state == State.HEALTHY and (t.previous, t.current) == (State.UNKNOWN, State.HEALTHY)


def test_down_after_n_failures_up_after_m_successes():
    b = BackendHealth("a", "http://a", state=State.HEALTHY)
    assert b.observe(False, T, error="ConnectionRefused") is None
    assert b.observe(False, T) is None
    t = b.observe(False, T, error="ConnectionRefused")
    assert b.state == State.UNHEALTHY and "3 failed probes" in t.reason
    assert b.observe(True, T) is None and b.state == State.UNHEALTHY
    assert b.observe(True, T).current == State.HEALTHY


def test_a_success_resets_the_failure_count():
    b = BackendHealth("a", "http://a", state=State.HEALTHY)
    b.observe(False, T), b.observe(False, T), b.observe(True, T), b.observe(False, T), b.observe(False, T)
    assert b.state == State.HEALTHY
    down = BackendHealth("b", "http://b", state=State.UNHEALTHY)
    down.observe(True, T), down.observe(False, T), down.observe(True, T)  # recovery needs consecutive successes
    assert down.state == State.UNHEALTHY


def test_thresholds_must_be_positive():
    with pytest.raises(ValueError):
        Thresholds(fall=0)


def test_directory_validates_and_reports_models():
    d = Directory()
    d.register("a", "http://a/", ("m1", "m2"))
    d.register("b", "http://b", ("m1",)).state = State.HEALTHY
    assert d.get("a").url == "http://a"
    assert [(m.name, m.backend_ids, m.healthy) for m in d.models()] == [("m1", ("a", "b"), 1), ("m2", ("a",), 0)]
    with pytest.raises(InvalidArgument, match="url"):
        d.register("c", "ftp://c", ())
    with pytest.raises(InvalidArgument, match="id"):
        d.register("c.d", "http://c", ())
    with pytest.raises(NotFound):
        d.remove("zzz")
