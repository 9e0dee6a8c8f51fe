from __future__ import annotations

from pydantic_settings import BaseSettings

from tmx_config import service_settings_config


class Settings(BaseSettings):
    model_config = service_settings_config("registry")

    host: str = "127.0.0.1"
    port: int = 50053
    database_url: str = "sqlite:///tensormux-registry.db"  # postgresql+psycopg://... in production
    nats_url: str = "nats://127.0.0.1:4222"
    redispatch_interval_s: float = 2.0
    metrics_port: int = 0
    log_level: str = "INFO"
