"""Declarations of every stream, KV bucket and durable consumer. Provisioning creates or verifies them."""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.js.api import RetentionPolicy, StorageType

from tmx_eventbus import subjects

DAY = 24 * 3600.0


@dataclass(frozen=True)
class StreamDecl:
    name: str
    subjects: tuple[str, ...]
    retention: RetentionPolicy = RetentionPolicy.LIMITS
    storage: StorageType = StorageType.FILE
    max_age_s: float = 0.0
    max_msgs_per_subject: int = -1
    duplicate_window_s: float = 120.0


@dataclass(frozen=True)
class ConsumerDecl:
    """A durable pull consumer with explicit ack; `backoff` spaces out redeliveries."""

    stream: str
    durable: str
    filter_subject: str
    ack_wait_s: float = 30.0
    max_deliver: int = 5
    backoff_s: tuple[float, ...] = field(default=(1.0, 5.0, 15.0, 30.0))


TMX_HEALTH = StreamDecl("TMX_HEALTH", (subjects.ALL_HEALTH,), max_msgs_per_subject=1)
TMX_LOAD = StreamDecl("TMX_LOAD", (subjects.ALL_LOAD,), storage=StorageType.MEMORY, max_age_s=3600.0,
                      max_msgs_per_subject=1)
TMX_SIGNAL = StreamDecl("TMX_SIGNAL", (subjects.ALL_SIGNAL,), max_age_s=3600.0)
TMX_AUDIT = StreamDecl("TMX_AUDIT", (subjects.ALL_AUDIT,), max_age_s=30 * DAY)
TMX_FORGE_JOBS = StreamDecl("TMX_FORGE_JOBS", (subjects.ALL_FORGE_JOBS,), retention=RetentionPolicy.WORK_QUEUE)
TMX_FORGE_PROGRESS = StreamDecl("TMX_FORGE_PROGRESS", (subjects.ALL_FORGE_PROGRESS,), max_age_s=7 * DAY)
TMX_REGISTRY = StreamDecl("TMX_REGISTRY", (subjects.ALL_REGISTRY,), max_age_s=30 * DAY)

STREAMS: tuple[StreamDecl, ...] = (TMX_HEALTH, TMX_LOAD, TMX_SIGNAL, TMX_AUDIT, TMX_FORGE_JOBS, TMX_FORGE_PROGRESS, TMX_REGISTRY)

BACKENDS_BUCKET = "tmx-backends"
# forge workers alive, by target (events.v1.ForgeWorker; keys from subjects.forge_worker_key): a worker's record
# lapses this long after its last put, so one that died without deleting it drops out
FORGE_WORKERS_BUCKET = "tmx-forge-workers"
FORGE_WORKER_TTL_S = 60.0


def forge_jobs_consumer(target: str) -> ConsumerDecl:
    """Workers of one hardware target share this durable consumer; a job goes to exactly one of them."""
    return ConsumerDecl(
        stream=TMX_FORGE_JOBS.name,
        durable=f"forge-worker-{subjects.token(target)}",
        filter_subject=subjects.forge_job(target),
        ack_wait_s=60.0,
        max_deliver=3,
        backoff_s=(60.0, 120.0),
    )


REGISTRY_PROGRESS = ConsumerDecl(
    stream=TMX_FORGE_PROGRESS.name, durable="registry-progress", filter_subject=subjects.ALL_FORGE_PROGRESS
)

CONSUMERS: tuple[ConsumerDecl, ...] = (REGISTRY_PROGRESS,)
