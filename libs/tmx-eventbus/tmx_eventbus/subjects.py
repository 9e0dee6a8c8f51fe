"""Subject builders: the only place a NATS subject is spelled out. Services never format subjects."""

from __future__ import annotations

import functools
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

ROOT = "tmx"


@functools.lru_cache(maxsize=4096)  # the gateway derives two subjects per request from a few tenants and backends
def token(value: str) -> str:
    """One subject token: NATS separators and wildcards (`.`, `*`, `>`, spaces) become `_`."""
    if not value:
        raise ValueError("subject token must not be empty")
    return _UNSAFE.sub("_", value)


def health_backend(backend_id: str) -> str:
    return f"{ROOT}.health.backend.{token(backend_id)}"


def health_load(backend_id: str) -> str:
    return f"{ROOT}.health.load.{token(backend_id)}"


def signal_backend(backend_id: str) -> str:
    return f"{ROOT}.signal.backend.{token(backend_id)}"


def audit(tenant: str) -> str:
    return f"{ROOT}.audit.{token(tenant)}"


def gateway_peers(group: str) -> str:
    """Core NATS, in no stream: a gateway's workers, or a peer group's gateways, share their routing view here
    (lossy, live only)."""
    return f"{ROOT}.gateway.peers.{token(group)}"


def forge_job(target: str) -> str:
    return f"{ROOT}.forge.job.{token(target)}"


def forge_progress(job_id: str) -> str:
    return f"{ROOT}.forge.progress.{token(job_id)}"


def forge_worker_key(target: str, worker_id: str) -> str:
    """A forge worker's key in the workers bucket (streams.FORGE_WORKERS_BUCKET)."""
    return f"{token(target)}.{token(worker_id)}"


def forge_workers_of(target: str) -> str:
    """The workers bucket's keys of one target's workers ("": every target's)."""
    return f"{token(target)}.*" if target else ">"


def registry_kernel(op: str) -> str:
    return f"{ROOT}.registry.kernel.{token(op)}"


ALL_HEALTH = f"{ROOT}.health.backend.>"
ALL_LOAD = f"{ROOT}.health.load.>"
ALL_SIGNAL = f"{ROOT}.signal.backend.>"
ALL_AUDIT = f"{ROOT}.audit.>"
ALL_FORGE_JOBS = f"{ROOT}.forge.job.>"
ALL_FORGE_PROGRESS = f"{ROOT}.forge.progress.>"
ALL_REGISTRY = f"{ROOT}.registry.kernel.>"
