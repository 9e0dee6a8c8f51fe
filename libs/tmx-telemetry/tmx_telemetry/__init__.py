"""Structured logging and Prometheus exposition, configured once by each service's entry point."""

from tmx_telemetry.logs import configure_logging
from tmx_telemetry.metrics import start_metrics_server

__all__ = ["configure_logging", "start_metrics_server"]
