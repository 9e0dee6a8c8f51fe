from __future__ import annotations

from pydantic_settings import BaseSettings

from tmx_config import service_settings_config


class Settings(BaseSettings):
    model_config = service_settings_config("health")

    host: str = "127.0.0.1"
    port: int = 50051
    nats_url: str = "nats://127.0.0.1:4222"
    fleet_file: str = "tensormux.yaml"
    probe_interval_s: float = 1.0
    suspect_probe_interval_s: float = 0.2  # a suspect backend is probed this often (a failed request probes at once)
    probe_timeout_s: float = 1.0
    probe_path: str = "/health"
    fall_threshold: int = 3  # consecutive failed probes before a backend is marked unhealthy
    rise_threshold: int = 2  # consecutive good probes before an unhealthy backend is marked healthy
    metrics_port: int = 0
    log_level: str = "INFO"
