from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from tmx_config import service_settings_config


class Settings(BaseSettings):
    model_config = service_settings_config("gateway")

    host: str = "127.0.0.1"
    port: int = 8080
    gateway_id: str = "gw-0"
    workers: int = Field(1, ge=1, le=256)  # processes serving the port (one core each); see workers.py
    peer_group: str = ""  # share the routing view with the gateways of this group over NATS (workers: their id)
    peer_sync_ms: float = Field(10.0, gt=0)  # how often a worker sends its peers what changed
    fleet_file: str = "tensormux.yaml"
    fleet_reload_s: float = 2.0  # how often the fleet file's mtime is checked; 0 disables reloading
    nats_url: str = ""  # empty: run without events (no audit stream, no health feed)
    nats_startup_grace_s: float = 10.0  # NATS unreachable at start: serve on the fleet file after this long
    max_body_bytes: int = 4 * 1024 * 1024
    body_read_timeout_s: float = Field(default=30.0, gt=0)  # a request body still arriving after this long: 408
    # a backend's whole (not streamed) answer held in memory beyond this is refused: 502 (OpenAI's largest, 2048
    # embeddings of 3072 dimensions as JSON, is ~130 MB)
    max_response_bytes: int = Field(256 * 1024 * 1024, gt=0)
    upstream_connect_timeout_s: float = 2.0
    upstream_timeout_s: float = 600.0
    max_attempts: int = 3  # backends tried per request before giving up
    breaker_threshold: int = 3  # consecutive failures that open a backend's circuit breaker
    breaker_cooldown_s: float = 2.0  # first open period; doubles on each re-open up to 30 s
    learn_engine_costs: bool = True  # learn each backend's prefill and step costs from its TTFTs; false: reference
    share_engine_costs: bool = True  # with peers, pool what every worker's answers show of each backend's speed
    learn_prefix_capacity: bool = True  # learn how much each backend's cache keeps from its usage's cached tokens
    retry_budget_ratio: float = 0.2  # retries may add at most this share of requests
    request_deadline_s: float = 600.0  # per request, all attempts included (header x-tmx-deadline-ms overrides)
    publish_events: bool = True  # false: follow the fleet over NATS but publish no audit or outcome events
    event_queue_size: int = 10_000
    spool_path: str = ".tmx/gateway-events.spool"  # events waiting for NATS survive here (bounded)
    spool_max_bytes: int = 64 * 1024 * 1024
    spool_replay_interval_s: float = 1.0
    event_linger_ms: float = 200.0  # at most one publish pass per this long: under load events gather
    event_urgent_linger_ms: float = 10.0  # a failed attempt (a health signal) waits at most this long
    event_ack_interval_ms: float = 1000.0  # how often a JetStream ack confirms what went out since the last one
    audit_file: str = ""  # also append every audit event to this JSONL file
    gc_gen0_threshold: int = 20_000  # young-generation GC every this many allocations, start-up heap frozen; 0: defaults
    metrics_flush_s: float = Field(1.0, gt=0)  # how often request-path metrics tallies reach /metrics (see metrics.py)
    admin_key: str = ""  # Bearer key for /admin/* and the /ui's data; empty: those are open only while no tenants
    metrics_auth: bool = False  # true: /metrics is an admin view too (it names every tenant in its labels)
    # export a span per request and per attempt at a backend to this OTLP/HTTP collector URL (as vLLM's
    # --otlp-traces-endpoint: http://collector:4318/v1/traces); empty: no tracing (see tracing.py)
    otlp_traces_endpoint: str = Field("", pattern=r"^(https?://\S+)?$")
    log_level: str = "INFO"
