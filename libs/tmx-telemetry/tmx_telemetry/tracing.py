"""Traces: OpenTelemetry spans, exported over OTLP/HTTP to the collector a service is configured with.

A service traces only when it is given an OTLP traces endpoint (each service's `otlp_traces_endpoint` setting,
the same URL vLLM's `--otlp-traces-endpoint` takes, e.g. `http://collector:4318/v1/traces`); without one it builds
no tracer and spends nothing on spans. The SDK's own environment variables still apply: `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES` name the process, `OTEL_TRACES_SAMPLER` (default `parentbased_always_on`: a request
whose caller did not sample its trace is not recorded) and `OTEL_TRACES_SAMPLER_ARG` sample,
`OTEL_EXPORTER_OTLP_HEADERS` authenticates to the collector, and `OTEL_BSP_*` size the export batches.

The provider is the service's own, not the process-global one: tests run several services in one process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# W3C trace context (traceparent, tracestate), what vLLM, SGLang and every OpenTelemetry SDK read and write
PROPAGATOR = TraceContextTextMapPropagator()

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


class Tracing:
    """A service's tracer provider and the tracer its code uses; `shutdown` exports what is still batched."""

    def __init__(self, provider: TracerProvider, instrumentation: str) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer(instrumentation)

    def shutdown(self) -> None:
        """Export the spans still batched and stop (blocks for at most the exporter's timeout)."""
        self.provider.shutdown()


def configure_tracing(service: str, endpoint: str, *, instance: str = "",
                      instrumentation: str = "") -> Tracing | None:
    """The tracing of `service` (its `service.name`, unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
    name it), exporting to `endpoint`; None when `endpoint` is empty. `instance`: its `service.instance.id`
    (a gateway's id, a worker's name)."""
    if not endpoint:
        return None
    # the SDK and its exporter (~50 ms of imports) only for a service that traces
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"OTLP traces endpoint {endpoint!r} is not an http(s) URL (OTLP/HTTP, e.g. "
                         "http://collector:4318/v1/traces)")
    named_by_env = OTELResourceDetector().detect().attributes
    ours = {"service.name": service, "service.namespace": "tensormux"}
    if instance:
        ours["service.instance.id"] = instance
    resource = Resource.create({k: v for k, v in ours.items() if k not in named_by_env})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return Tracing(provider, instrumentation or service)
