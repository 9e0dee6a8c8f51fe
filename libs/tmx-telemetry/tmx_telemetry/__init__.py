"""Structured logging, Prometheus exposition and traces, configured once by each service's entry point."""

from tmx_telemetry.logs import configure_logging
from tmx_telemetry.metrics import start_metrics_server
from tmx_telemetry.tracing import Tracing, configure_tracing

__all__ = ["Tracing", "configure_logging", "configure_tracing", "start_metrics_server"]
