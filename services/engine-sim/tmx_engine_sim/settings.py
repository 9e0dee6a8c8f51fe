from __future__ import annotations

from pydantic_settings import BaseSettings

from tmx_config import service_settings_config


class Settings(BaseSettings):
    model_config = service_settings_config("engine-sim")

    host: str = "127.0.0.1"
    port: int = 8000
    server_id: str = "sim-0"
    models: str = "tmx-sim-llama"  # comma-separated served model names
    max_model_len: int = 8192
    max_num_seqs: int = 256
    num_gpu_blocks: int = 8192
    block_size: int = 16
    prefill_tok_s: float = 8000.0
    base_step_ms: float = 6.0
    per_seq_step_ms: float = 0.35
    time_scale: float = 1.0  # real seconds per simulated second; 0.1 runs ten times faster
    default_max_tokens: int = 16
    embedding_dim: int = 64
    # faults (also settable at run time through POST /admin/faults)
    error_rate: float = 0.0
    stall_s: float = 0.0
    drop_after_tokens: int = 0
    slow_start_s: float = 0.0
    log_level: str = "WARNING"

    @property
    def served_models(self) -> list[str]:
        return [m.strip() for m in self.models.split(",") if m.strip()]
