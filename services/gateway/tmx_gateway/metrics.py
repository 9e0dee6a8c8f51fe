from __future__ import annotations

import os

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


class Children:
    """A labelled metric's children, looked up by their label values in a dict. prometheus_client's `labels()`
    checks and stringifies the values and takes a lock on every call: several times per request, a few percent of
    the gateway's CPU. Label values on the request path are bounded (models, backends, statuses, tenants from the
    fleet file), and the gateway never removes a child, so the cache never goes stale or grows without bound."""

    __slots__ = ("_metric", "_children")

    def __init__(self, metric: MetricWrapperBase) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], MetricWrapperBase] = {}

    def __call__(self, *values: str) -> MetricWrapperBase:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child
