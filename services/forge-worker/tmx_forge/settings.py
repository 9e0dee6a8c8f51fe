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
    cpu_threads: int = 1  # torch threads per timed process on a CPU target (0: one per core); see verifier.Limits
    registry_wait_s: float = 3600.0  # how long a job waits for an unreachable registry/database before requeueing
    # the LLM agent generator: any OpenAI-compatible endpoint (the Tensormux gateway included)
    agent_base_url: str = ""  # e.g. http://127.0.0.1:8080/v1
    agent_model: str = ""
    agent_api_key: str = ""
    agent_usd_per_1k_tokens: float = 0.0
    agent_max_cost_usd: float = 1.0  # per job
    agent_playbook_chars: int = 12000
    metrics_port: int = 0
    log_level: str = "INFO"
