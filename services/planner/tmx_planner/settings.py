from __future__ import annotations

from pydantic_settings import BaseSettings

from tmx_config import service_settings_config


class Settings(BaseSettings):
    model_config = service_settings_config("planner")

    host: str = "127.0.0.1"
    port: int = 50052
    nats_url: str = ""  # set to learn from the gateways' RequestOutcome events
    fleet_file: str = ""  # backends with declared hardware are compared with predictions
    metrics_port: int = 0
    log_level: str = "INFO"
