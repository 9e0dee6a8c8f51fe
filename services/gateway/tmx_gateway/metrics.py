from __future__ import annotations

import os
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.metrics import MetricWrapperBase

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # what /metrics exposes: this registry, or with several workers (see workers.py) all workers' values summed
        self.exposed = r
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.exposed)
        self.requests = Counter("tmx_gateway_requests", "Requests answered", ["model", "backend", "status"], registry=r)
        self.latency = Histogram("tmx_gateway_request_duration_seconds", "End-to-end request latency", ["model"],
                                 buckets=_BUCKETS, registry=r)
        self.ttft = Histogram("tmx_gateway_ttft_seconds", "Time to first streamed byte", ["model"],
                              buckets=_BUCKETS, registry=r)
        self.inflight = Gauge("tmx_gateway_inflight", "Requests in flight", ["backend"], registry=r,
                              multiprocess_mode="livesum")
        self.stream_continuations = Counter(
            "tmx_gateway_stream_continuations",
            "Streams that broke mid-way: continued on another backend, continuation failed, or impossible",
            ["outcome"], registry=r)
        self.requests_at_fault = Counter(
            "tmx_gateway_requests_at_fault", "Requests that two or more backends answered with HTTP 500 and none "
            "answered otherwise: judged the request's fault, counted against no backend's health", registry=r)
        self.fallbacks = Counter("tmx_gateway_model_fallbacks", "Requests moved to a fallback model, none of their "
                                 "model's backends able to answer", ["model", "fallback"], registry=r)
        self.retries = Counter("tmx_gateway_upstream_retries", "Attempts moved to another backend", ["reason"],
                               registry=r)
        self.tokens = Counter("tmx_gateway_tokens", "Tokens metered", ["tenant", "model", "kind"], registry=r)
        self.backend_up = Gauge("tmx_gateway_backend_routable", "1 when the backend may receive traffic", ["backend"],
                                registry=r, multiprocess_mode="livemax")
        self.events_dropped = Counter("tmx_gateway_events_dropped",
                                      "Events dropped: the in-memory queue or the on-disk spool was full",
                                      registry=r)
        self.prefix_predictions = Counter(
            "tmx_gateway_prefix_predictions", "Prefix-aware routing: predicted cache hit vs the backend's reported "
            "cached tokens (outcome = predicted_actual, each hit or miss)", ["outcome"], registry=r)
        self.routing_decisions = Counter(
            "tmx_gateway_routing_decisions", "Routing decisions by the rule that decided them (prefix_aware: "
            "cached = sent where its prefix is cached, saturated = cache elsewhere but that backend's queue costs "
            "more, cold = no backend holds its prefix, imbalanced = SGLang's load guard)", ["strategy", "kind"],
            registry=r)
        self.rate_limited = Counter("tmx_gateway_rate_limited", "Requests refused by a tenant's rate limit",
                                    ["tenant", "limit"], registry=r)
        self.spool_bytes = Gauge("tmx_gateway_event_spool_bytes", "Events waiting on disk for NATS", registry=r,
                                 multiprocess_mode="livesum")
        # the children the request path touches, by label values (see Children)
        self.requests_of, self.latency_of = Children(self.requests), Children(self.latency)
        self.ttft_of, self.inflight_of = Children(self.ttft), Children(self.inflight)
        self.tokens_of, self.decisions_of = Children(self.tokens), Children(self.routing_decisions)
        self._batched = (self.requests_of, self.latency_of, self.ttft_of, self.inflight_of, self.tokens_of,
                         self.decisions_of)

    def flush(self) -> None:
        """Add what the request path tallied (see `Children`) to the metrics."""
        for children in self._batched:
            children.flush()


class Children:
    """A labelled metric's children on the request path, as tallies kept in this process and added to the
    metric by `flush` (each second, before /metrics answers, and at shutdown; see `GatewayMetrics.flush`).

    Every update of a prometheus_client value takes a lock, and with several workers writes a shared file
    (multiprocess mode): seven per request were a tenth of a worker's CPU at two workers (202 us of CPU per request
    with them, 182 with tallies; interleaved A/B, JSON at 64 connections, session 17). A tally is a Python number.
    The cost: another worker's /metrics may see this worker's counts up to a flush interval late; the worker
    answering a scrape flushes its own first.

    Label values on the request path are bounded (models, backends, statuses, tenants from the fleet file), and
    the gateway never removes a child, so the tallies never go stale or grow without bound."""

    __slots__ = ("_metric", "_tallies", "_tally")

    def __init__(self, metric: MetricWrapperBase) -> None:
        self._metric = metric
        self._tallies: dict[tuple[str, ...], Tally | HistogramTally] = {}
        self._tally = HistogramTally if isinstance(metric, Histogram) else Tally

    def __call__(self, *values: str) -> Tally | HistogramTally:
        tally = self._tallies.get(values)
        if tally is None:
            tally = self._tallies[values] = self._tally(self._metric.labels(*values))
        return tally

    def flush(self) -> None:
        for tally in self._tallies.values():
            tally.flush()


class Tally:
    """A counter's or a gauge's change not yet added to it."""

    __slots__ = ("child", "delta")

    def __init__(self, child) -> None:
        self.child, self.delta = child, 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.delta += amount

    def dec(self, amount: float = 1.0) -> None:
        self.delta -= amount

    def flush(self) -> None:
        if self.delta:
            delta, self.delta = self.delta, 0.0
            self.child.inc(delta)  # a gauge's may be negative (in flight: more ended than started)


class HistogramTally:
    """A histogram's observations not yet added to it, by bucket as `Histogram.observe` counts them (the first
    bucket whose upper bound is >= the value), and their sum. `flush` adds them to the child's bucket and sum
    values (prometheus_client's, which has no bulk observe; `test_metrics` holds the result to what observing
    each value gives)."""

    __slots__ = ("child", "bounds", "counts", "sum", "pending")

    def __init__(self, child: Histogram) -> None:
        self.child, self.bounds = child, child._upper_bounds
        self.counts, self.sum, self.pending = [0] * len(self.bounds), 0.0, False

    def observe(self, value: float) -> None:
        index = bisect_left(self.bounds, value)  # the last bound is +Inf: always a bucket, but for NaN
        if value <= self.bounds[index]:  # (NaN: none, as observe gives it none)
            self.counts[index] += 1
        self.sum += value
        self.pending = True

    def flush(self) -> None:
        if not self.pending:
            return
        counts, total = self.counts, self.sum
        self.counts, self.sum, self.pending = [0] * len(self.bounds), 0.0, False
        self.child._sum.inc(total)
        for bucket, count in zip(self.child._buckets, counts):
            if count:
                bucket.inc(count)
