"""The request path's metric tallies (metrics.Children): nothing reaches a metric before a flush, and a flush gives
exactly what updating the metric directly gives."""

import math
import random

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tmx_gateway.metrics import _BUCKETS, Children, GatewayMetrics


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_a_flushed_histogram_tally_is_what_observing_each_value_gives():
    values = [0.0, 0.0005, 0.00050001, 1, 1.0000001, 60, 61, 1e9, math.inf, float("nan"), -1.0]
    rng = random.Random(7)
    values += [rng.uniform(0, 70) for _ in range(500)]
    direct_registry, tallied_registry = CollectorRegistry(), CollectorRegistry()
    direct = Histogram("h", "h", ["model"], buckets=_BUCKETS, registry=direct_registry)
    tallied = Histogram("h", "h", ["model"], buckets=_BUCKETS, registry=tallied_registry)
    children = Children(tallied)
    for value in values:
        direct.labels("m").observe(value)
        children("m").observe(value)
    assert tallied_registry.get_sample_value("h_count", {"model": "m"}) == 0
    children.flush()
    assert _exposition(tallied_registry) == _exposition(direct_registry)
    children.flush()  # nothing new: nothing added twice
    assert _exposition(tallied_registry) == _exposition(direct_registry)


def test_counter_and_gauge_tallies_reach_their_metric_on_flush_only():
    registry = CollectorRegistry()
    counter, gauge = Counter("c", "c", ["k"], registry=registry), Gauge("g", "g", ["b"], registry=registry)
    counts, levels = Children(counter), Children(gauge)
    counts("a").inc()
    counts("a").inc(4)
    counts("b").inc()
    for _ in range(3):
        levels("x").inc()
    levels("x").dec()
    assert registry.get_sample_value("c_total", {"k": "a"}) == 0
    assert registry.get_sample_value("g", {"b": "x"}) == 0
    counts.flush()
    levels.flush()
    assert registry.get_sample_value("c_total", {"k": "a"}) == 5
    assert registry.get_sample_value("c_total", {"k": "b"}) == 1
    assert registry.get_sample_value("g", {"b": "x"}) == 2
    levels("x").dec(2)  # more ended than started since the last flush
    counts.flush()
    levels.flush()
    assert registry.get_sample_value("c_total", {"k": "a"}) == 5
    assert registry.get_sample_value("g", {"b": "x"}) == 0


def test_the_gateways_flush_covers_every_metric_the_request_path_tallies():
    metrics = GatewayMetrics()
    metrics.requests_of("m", "b", "200").inc()
    metrics.latency_of("m").observe(0.01)
    metrics.ttft_of("m").observe(0.002)
    metrics.inflight_of("b").inc()
    metrics.tokens_of("t", "m", "prompt").inc(7)
    metrics.decisions_of("prefix_aware", "cached").inc()
    metrics.flush()
    sample = metrics.registry.get_sample_value
    assert sample("tmx_gateway_requests_total", {"model": "m", "backend": "b", "status": "200"}) == 1
    assert sample("tmx_gateway_request_duration_seconds_count", {"model": "m"}) == 1
    assert sample("tmx_gateway_ttft_seconds_sum", {"model": "m"}) == 0.002
    assert sample("tmx_gateway_inflight", {"backend": "b"}) == 1
    assert sample("tmx_gateway_tokens_total", {"tenant": "t", "model": "m", "kind": "prompt"}) == 7
    assert sample("tmx_gateway_routing_decisions_total", {"strategy": "prefix_aware", "kind": "cached"}) == 1
