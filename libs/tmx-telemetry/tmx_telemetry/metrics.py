from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server


def start_metrics_server(port: int, registry: CollectorRegistry = REGISTRY) -> int | None:
    """Expose /metrics on `port` for services without an HTTP edge of their own; 0 disables it."""
    if port <= 0:
        return None
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server.server_port
