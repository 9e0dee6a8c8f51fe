from __future__ import annotations

from pydantic_settings import BaseSettings

from tmx_config import service_settings_config


class Settings(BaseSettings):
    model_config = service_settings_config("forge")

    nats_url: str = "nats://127.0.0.1:4222"
    registry_addr: str = "127.0.0.1:50053"
    target: str = "cpu"
    worker_id: str = "forge-0"
    candidate_timeout_s: float = 120.0
    bench_repeats: int = 7
    compile_baseline: bool = True  # the baseline is the better of eager and torch.compile
    metrics_port: int = 0
    log_level: str = "INFO"
