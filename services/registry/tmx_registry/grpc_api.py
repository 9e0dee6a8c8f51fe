"""RegistryService and ForgeService: proto <-> domain, nothing else."""

from __future__ import annotations

import asyncio
import functools
import logging

from tensormux.events.v1 import events_pb2
from tensormux.forge.v1 import forge_pb2, forge_pb2_grpc
from tensormux.registry.v1 import registry_pb2, registry_pb2_grpc
from tmx_errors import InvalidArgument, Unavailable
from tmx_grpcserver import grpc_errors
from tmx_registry.domain.jobs import JobSpec
from tmx_registry.domain.kernels import DecisionRecord, Environment, OpSpec, Provenance, RunRecord
from tmx_registry.events import STATE_TO_PROTO, JobWatchHub, RegistryEvents, worker_info
from tmx_registry.repository import Job, Kernel, Repository

log = logging.getLogger(__name__)

WATCH_POLL_S = 1.0  # WatchJob also re-reads the row, so updates applied by another replica are seen


def _job(job: Job) -> forge_pb2.Job:
    s = job.spec
    return forge_pb2.Job(
        id=job.id, op=s.op, dtype=s.dtype, shapes=[events_pb2.Shape(dims=list(d)) for d in s.shapes], target=s.target,
        generator=s.generator, state=STATE_TO_PROTO[job.state], reason=job.reason, kernel_id=job.kernel_id,
        best_speedup=job.best_speedup, created_at_unix_ms=job.created_at_ms, updated_at_unix_ms=job.updated_at_ms,
        max_candidates=s.max_candidates, time_budget_s=s.time_budget_s, candidate_source=s.candidate_source,
        reference_source=s.reference_source,
    )


def _kernel(k: Kernel) -> registry_pb2.Kernel:
    p, e = k.provenance, k.environment
    return registry_pb2.Kernel(
        id=k.id, op=k.op, dtype=k.dtype, hardware=k.hardware, content_hash=k.content_hash, source=k.source,
        config_json=k.config_json, speedup=k.speedup, evidence_json=k.evidence_json, job_id=k.job_id,
        created_at_unix_ms=k.created_at_ms, status=k.status, op_reference_hash=k.op_reference_hash,
        provenance=registry_pb2.Provenance(generator=p.generator, model=p.model, prompt_hash=p.prompt_hash,
                                           worker_id=p.worker_id, toolchain_json=p.toolchain_json),
        environment=registry_pb2.Environment(device=e.device, capability=e.capability, driver=e.driver,
                                             torch=e.torch, triton=e.triton),
    )


def _run(r: RunRecord) -> registry_pb2.Run:
    return registry_pb2.Run(kind=r.kind, shape=list(r.shape), passed=r.passed, seed=r.seed, candidate_s=r.candidate_s,
                            baseline_s=r.baseline_s, baseline=r.baseline, speedup=r.speedup, pairs_won=r.pairs_won,
                            pairs=r.pairs, job_id=r.job_id, created_at_unix_ms=r.created_at_ms)


def _decision(d: DecisionRecord) -> registry_pb2.Decision:
    return registry_pb2.Decision(kernel_id=d.kernel_id, op=d.op, dtype=d.dtype, hardware=d.hardware,
                                 decision=d.decision, reason=d.reason, actor=d.actor,
                                 created_at_unix_ms=d.created_at_ms)


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, repo: Repository, events: RegistryEvents) -> None:
        self.repo, self.events = repo, events

    @grpc_errors
    async def PublishKernel(self, r, context):
        p, e = r.provenance, r.environment
        runs = tuple(RunRecord(x.kind, tuple(x.shape), x.passed, x.seed, x.candidate_s, x.baseline_s, x.baseline,
                               x.speedup, x.pairs_won, x.pairs) for x in r.runs)
        kernel, created = await asyncio.to_thread(
            functools.partial(
                self.repo.publish_kernel, r.op, r.dtype, r.hardware, r.source, r.config_json, r.speedup,
                r.evidence_json, r.job_id,
                provenance=Provenance(p.generator, p.model, p.prompt_hash, p.worker_id, p.toolchain_json or "{}"),
                environment=Environment(e.device, e.capability, e.driver, e.torch, e.triton), runs=runs,
                op_spec=OpSpec(r.op_spec.name, r.op_spec.reference_source, r.op_spec.tolerance_json or "{}")
                if r.HasField("op_spec") else None))
        if created:
            await self.events.announce_kernel(kernel)
        return _kernel(kernel)

    @grpc_errors
    async def GetKernel(self, r, context):
        _required(id=r.id)
        return _kernel(await asyncio.to_thread(self.repo.get_kernel, r.id))

    @grpc_errors
    async def ListKernels(self, r, context):
        kernels = await asyncio.to_thread(self.repo.list_kernels, r.op, r.hardware, r.include_revoked)
        return registry_pb2.ListKernelsResponse(kernels=[_kernel(k) for k in kernels])

    @grpc_errors
    async def ResolveKernel(self, r, context):
        _required(op=r.op, dtype=r.dtype, hardware=r.hardware)
        return _kernel(await asyncio.to_thread(self.repo.resolve, r.op, r.dtype, r.hardware, tuple(r.shape)))

    @grpc_errors
    async def RevokeKernel(self, r, context):
        _required(id=r.id)
        return _kernel(await asyncio.to_thread(self.repo.revoke, r.id, r.reason, r.actor))

    @grpc_errors
    async def ListDecisions(self, r, context):
        decisions = await asyncio.to_thread(self.repo.list_decisions, r.op, r.kernel_id, r.limit or 100)
        return registry_pb2.ListDecisionsResponse(decisions=[_decision(d) for d in decisions])

    @grpc_errors
    async def ListRuns(self, r, context):
        _required(kernel_id=r.kernel_id)
        return registry_pb2.ListRunsResponse(runs=[_run(x) for x in await asyncio.to_thread(self.repo.list_runs,
                                                                                            r.kernel_id)])

    @grpc_errors
    async def GetOpSpec(self, r, context):
        _required(name=r.name)
        spec = await asyncio.to_thread(self.repo.get_op_spec, r.name, r.reference_hash)
        return registry_pb2.OpSpec(name=spec.name, reference_hash=spec.reference_hash,
                                   reference_source=spec.reference_source, tolerance_json=spec.tolerance_json,
                                   created_at_unix_ms=spec.created_at_ms)


def _required(**fields: str) -> None:
    """INVALID_ARGUMENT naming the first of `fields` left empty (an empty id or op matched nothing: NOT_FOUND, as
    if the caller had named something that does not exist)."""
    for name, value in fields.items():
        if not value:
            raise InvalidArgument(name, "is required")


class ForgeServicer(forge_pb2_grpc.ForgeServiceServicer):
    def __init__(self, repo: Repository, events: RegistryEvents, hub: JobWatchHub) -> None:
        self.repo, self.events, self.hub = repo, events, hub

    @grpc_errors
    async def SubmitJob(self, r, context):
        spec = JobSpec(op=r.op, dtype=r.dtype or "float32", shapes=tuple(tuple(s.dims) for s in r.shapes),
                       target=r.target, generator=r.generator or "template", max_candidates=r.max_candidates or 4,
                       time_budget_s=r.time_budget_s or 300.0, candidate_source=r.candidate_source,
                       reference_source=r.reference_source)
        workers = [worker_info(w) for w in await self._workers(spec.target)]
        job = await asyncio.to_thread(self.repo.create_job, spec, workers)
        if await self.events.dispatch(job):
            job = await asyncio.to_thread(self.repo.get_job, job.id)
        return _job(job)

    async def _workers(self, target: str) -> list[events_pb2.ForgeWorker]:
        """The target's workers alive now; none known while NATS is unreachable (a job is still stored then, and
        dispatched by the outbox once NATS is back, as when a worker is not yet running)."""
        try:
            return await self.events.workers(target)
        except Unavailable as exc:
            log.warning("forge workers unknown; the job is not checked against them", extra={"error": exc.message})
            return []

    @grpc_errors
    async def ListWorkers(self, r, context):
        return forge_pb2.ListWorkersResponse(workers=await self.events.workers(r.target))

    @grpc_errors
    async def GetJob(self, r, context):
        return _job(await asyncio.to_thread(self.repo.get_job, r.id))

    @grpc_errors
    async def ListJobs(self, r, context):
        jobs = await asyncio.to_thread(self.repo.list_jobs, r.limit or 50)
        return forge_pb2.ListJobsResponse(jobs=[_job(j) for j in jobs])

    @grpc_errors
    async def WatchJob(self, r, context):
        queue = self.hub.subscribe(r.id)
        try:
            job = await asyncio.to_thread(self.repo.get_job, r.id)
            last = None
            while True:
                if job != last:
                    yield _job(job)
                    last = job
                if job.state.terminal:
                    return
                try:
                    job = await asyncio.wait_for(queue.get(), timeout=WATCH_POLL_S)
                except asyncio.TimeoutError:
                    job = await asyncio.to_thread(self.repo.get_job, r.id)
        finally:
            self.hub.unsubscribe(r.id, queue)

    @grpc_errors
    async def CancelJob(self, r, context):
        job = await asyncio.to_thread(self.repo.cancel_job, r.id)
        self.hub.notify(job)
        return _job(job)
