"""NATS adapters of the registry: dispatching jobs to workers (with an outbox), applying their progress,
and announcing promoted kernels."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import nats.errors

from tensormux.events.v1 import events_pb2
from tmx_errors import Unavailable
from tmx_eventbus import EventBus, subjects
from tmx_eventbus.streams import REGISTRY_PROGRESS
from tmx_registry.domain.jobs import JobState, WorkerInfo
from tmx_registry.repository import Job, Kernel, Repository

log = logging.getLogger(__name__)

WORKERS_READ_TIMEOUT_S = 2.0  # a read of the forge workers bucket

STATE_TO_PROTO = {
    JobState.QUEUED: events_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: events_pb2.JOB_STATE_RUNNING,
    JobState.PROMOTED: events_pb2.JOB_STATE_PROMOTED,
    JobState.NOT_PROMOTED: events_pb2.JOB_STATE_NOT_PROMOTED,
    JobState.FAILED: events_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: events_pb2.JOB_STATE_CANCELLED,
}
STATE_FROM_PROTO = {v: k for k, v in STATE_TO_PROTO.items()}


def kernel_job_event(job: Job) -> events_pb2.KernelJob:
    spec = job.spec
    return events_pb2.KernelJob(
        event_id=f"job-{job.id}",  # stable: a re-dispatch of the same job is deduplicated by JetStream
        job_id=job.id, op=spec.op, dtype=spec.dtype, shapes=[events_pb2.Shape(dims=list(s)) for s in spec.shapes],
        target=spec.target, generator=spec.generator, max_candidates=spec.max_candidates,
        time_budget_s=spec.time_budget_s, candidate_source=spec.candidate_source,
        reference_source=spec.reference_source,
    )


class JobWatchHub:
    """In-process fan-out of job updates to WatchJob streams."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue]] = defaultdict(set)

    def subscribe(self, job_id: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._queues[job_id].add(queue)
        return queue

    def unsubscribe(self, job_id: str, queue: asyncio.Queue) -> None:
        self._queues[job_id].discard(queue)
        if not self._queues[job_id]:
            del self._queues[job_id]

    def notify(self, job: Job) -> None:
        for queue in self._queues.get(job.id, ()):
            queue.put_nowait(job)


class RegistryEvents:
    def __init__(self, bus: EventBus, repo: Repository, hub: JobWatchHub) -> None:
        self.bus, self.repo, self.hub = bus, repo, hub

    async def workers(self, target: str = "") -> list[events_pb2.ForgeWorker]:
        """The forge workers alive now (their records in the workers bucket), of `target` or every target.
        Unavailable when the bucket cannot be read within WORKERS_READ_TIMEOUT_S."""
        try:
            return await asyncio.wait_for(self._workers(target), WORKERS_READ_TIMEOUT_S)
        except (asyncio.TimeoutError, nats.errors.Error) as exc:
            raise Unavailable(f"the forge workers cannot be read from NATS ({type(exc).__name__})") from None

    async def _workers(self, target: str) -> list[events_pb2.ForgeWorker]:
        kv = await self.bus.forge_workers_kv()
        # each key's latest record, deleted ones left out; the first None marks the end of what is stored now
        # (nats-py's `keys(filters=...)` matches filters as substrings, not as subject wildcards)
        watcher = await kv.watch(subjects.forge_workers_of(target), ignore_deletes=True)
        found = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.value:
                    found.append(events_pb2.ForgeWorker.FromString(entry.value))
        finally:
            await watcher.stop()
        return sorted(found, key=lambda w: (w.target, w.worker_id))

    async def dispatch(self, job: Job) -> bool:
        """Put a stored job on its target's work queue; on failure the outbox loop retries it."""
        try:
            await self.bus.publish(subjects.forge_job(job.spec.target), kernel_job_event(job))
        except Exception as exc:
            log.warning("job dispatch deferred", extra={"job": job.id, "error": repr(exc)})
            return False
        await asyncio.to_thread(self.repo.mark_dispatched, job.id)
        return True

    async def redispatch_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                for job in await asyncio.to_thread(self.repo.undispatched_jobs):
                    await self.dispatch(job)
            except Exception as exc:  # the database may be down: jobs wait in it, nothing is lost
                log.warning("outbox pass failed", extra={"error": repr(exc)})

    async def consume_progress(self) -> None:
        await self.bus.consume(REGISTRY_PROGRESS, self._on_progress)

    async def _on_progress(self, event) -> None:
        if not isinstance(event, events_pb2.JobProgress):
            return
        state = STATE_FROM_PROTO.get(event.state)
        if state is None:
            return
        delay = 0.1
        while True:
            try:
                job = await asyncio.to_thread(self.repo.apply_progress, event.job_id, state, event.message,
                                              event.kernel_id, event.best_speedup)
                break
            except Unavailable as exc:
                # the database is down: hold this report (the bus keeps its ack deadline alive) and the ones
                # behind it until the database is back; nothing is lost and nothing overtakes
                log.warning("progress waits for the database", extra={"job": event.job_id, "error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if job is not None:
            self.hub.notify(job)

    async def announce_kernel(self, kernel: Kernel) -> None:
        await self.bus.publish(subjects.registry_kernel(kernel.op), events_pb2.KernelPromoted(
            kernel_id=kernel.id, op=kernel.op, dtype=kernel.dtype, hardware=kernel.hardware,
            content_hash=kernel.content_hash, speedup=kernel.speedup,
        ))


def worker_info(worker: events_pb2.ForgeWorker) -> WorkerInfo:
    return WorkerInfo(worker.worker_id, worker.target, frozenset(worker.ops), frozenset(worker.generators))
