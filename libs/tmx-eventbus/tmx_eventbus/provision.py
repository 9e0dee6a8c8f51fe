"""Create-or-verify: streams and buckets are created once; a stream that differs from its declaration is an
error to be fixed by a person, never silently updated."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.errors import NotFoundError

from tmx_eventbus.streams import BACKENDS_BUCKET, FORGE_WORKER_TTL_S, FORGE_WORKERS_BUCKET, STREAMS, StreamDecl


class StreamMismatch(RuntimeError):
    pass


def _config(decl: StreamDecl) -> StreamConfig:
    return StreamConfig(
        name=decl.name,
        subjects=list(decl.subjects),
        retention=decl.retention,
        storage=decl.storage,
        max_age=decl.max_age_s,
        max_msgs_per_subject=decl.max_msgs_per_subject,
        duplicate_window=decl.duplicate_window_s,
    )


def _differences(decl: StreamDecl, actual: StreamConfig) -> list[str]:
    wanted = _config(decl)
    diffs = []
    for name in ("subjects", "retention", "storage", "max_age", "max_msgs_per_subject", "duplicate_window"):
        want, have = getattr(wanted, name), getattr(actual, name)
        if name == "subjects":
            want, have = sorted(want or []), sorted(have or [])
        if name in ("max_age", "duplicate_window"):
            want, have = float(want or 0), float(have or 0)
        if want != have:
            diffs.append(f"{name}: declared {want!r}, server has {have!r}")
    return diffs


async def provision(js: JetStreamContext, streams: tuple[StreamDecl, ...] = STREAMS) -> list[str]:
    """Ensure every declared stream and the KV buckets (backends, forge workers) exist as declared. Returns what
    was created."""
    created = []
    for decl in streams:
        try:
            info = await js.stream_info(decl.name)
        except NotFoundError:
            await js.add_stream(_config(decl))
            created.append(decl.name)
            continue
        diffs = _differences(decl, info.config)
        if diffs:
            raise StreamMismatch(f"stream {decl.name} differs from its declaration: " + "; ".join(diffs))
    for bucket in (KeyValueConfig(bucket=BACKENDS_BUCKET, history=1),
                   KeyValueConfig(bucket=FORGE_WORKERS_BUCKET, history=1, ttl=FORGE_WORKER_TTL_S)):
        try:
            await js.key_value(bucket.bucket)
        except NotFoundError:
            await js.create_key_value(bucket)
            created.append(f"KV_{bucket.bucket}")
    return created
