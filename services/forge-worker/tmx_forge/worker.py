"""Turns one KernelJob into a verdict: generate candidates, verify and time each in a sandbox, promote the
winner to the registry only when it clears the promotion rule, and report every step as JobProgress."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import platform

import aiohttp
import grpc

from tensormux.events.v1 import events_pb2
from tensormux.forge.v1 import forge_pb2, forge_pb2_grpc
from tensormux.registry.v1 import registry_pb2, registry_pb2_grpc
from tmx_eventbus import EventBus, subjects
from tmx_forge.agent import AgentError, AgentGenerator
from tmx_forge.domain.agent_prompt import Budget
from tmx_forge.domain.candidates import Candidate, ListProposer, inductor_candidates, template_candidates
from tmx_forge.domain.promotion import decide, geomean
from tmx_forge.settings import Settings
from tmx_forge.verifier import Limits, Verdict, Verifier

log = logging.getLogger(__name__)

TERMINAL = {events_pb2.JOB_STATE_PROMOTED, events_pb2.JOB_STATE_NOT_PROMOTED, events_pb2.JOB_STATE_FAILED,
            events_pb2.JOB_STATE_CANCELLED}
CPU_NOTE = ("on the cpu target Triton candidates run under the interpreter, which checks correctness but says "
            "nothing of compiled speed; a GPU worker benchmarks them")


def _toolchain() -> dict:
    import torch
    import triton

    return {"torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine()}


class JobRunner:
    def __init__(self, bus: EventBus, channel: grpc.aio.Channel, settings: Settings,
                 http: aiohttp.ClientSession | None = None) -> None:
        self.bus = bus
        self.settings = settings
        self.http = http  # for the agent generator's model endpoint
        self.registry = registry_pb2_grpc.RegistryServiceStub(channel)
        self.forge = forge_pb2_grpc.ForgeServiceStub(channel)

    async def _progress(self, job_id: str, state: int, step: str, message: str = "", kernel_id: str = "",
                        best_speedup: float = 0.0) -> None:
        await self.bus.publish(subjects.forge_progress(job_id), events_pb2.JobProgress(
            job_id=job_id, state=state, step=step, message=message, worker_id=self.settings.worker_id,
            kernel_id=kernel_id, best_speedup=best_speedup))

    async def _state(self, job_id: str) -> int:
        job = await self.forge.GetJob(forge_pb2.GetJobRequest(id=job_id), timeout=10)
        return job.state

    async def handle(self, job) -> None:
        if not isinstance(job, events_pb2.KernelJob):
            return
        try:
            if await self._state(job.job_id) in TERMINAL:
                log.info("skipping job that already ended", extra={"job": job.job_id})
                return  # a redelivery of a finished or cancelled job: nothing to do, ack it
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise  # registry unreachable: the job is redelivered later, nothing lost
            log.warning("job unknown to the registry; dropping", extra={"job": job.job_id})
            return
        await self._progress(job.job_id, events_pb2.JOB_STATE_RUNNING, "started")
        try:
            from tmx_kernels import get_op

            op = get_op(job.op)
        except KeyError as exc:
            await self._progress(job.job_id, events_pb2.JOB_STATE_FAILED, "failed", str(exc))
            return
        shapes = [list(s.dims) for s in job.shapes]
        limits = Limits(wall_s=self.settings.candidate_timeout_s, repeats=self.settings.bench_repeats,
                        compile_baseline=self.settings.compile_baseline)
        try:
            verifier = Verifier(job.op, job.dtype, job.target, shapes, limits)
        except ValueError as exc:
            await self._progress(job.job_id, events_pb2.JOB_STATE_FAILED, "failed", str(exc))
            return
        try:
            proposer = self._proposer(job, op, shapes)
        except AgentError as exc:
            await self._progress(job.job_id, events_pb2.JOB_STATE_FAILED, "failed", str(exc))
            return
        results: list[tuple[Candidate, Verdict]] = []
        verdict = None
        while True:
            if await self._state(job.job_id) == events_pb2.JOB_STATE_CANCELLED:
                log.info("job cancelled", extra={"job": job.job_id})
                return
            try:
                candidate = await proposer.propose(verdict)
            except AgentError as exc:  # the model endpoint failed mid-job: conclude on what was verified
                log.warning("agent stopped", extra={"job": job.job_id, "error": str(exc)})
                break
            if candidate is None:
                break
            verdict = await asyncio.to_thread(verifier.verify, candidate)
            results.append((candidate, verdict))
            summary = (f"passed, geomean {geomean(verdict.speedups):.3g}x" if verdict.ok
                       else f"rejected ({verdict.reason_code}): {verdict.reason}")
            await self._progress(job.job_id, events_pb2.JOB_STATE_RUNNING, f"candidate {len(results)}",
                                 f"{candidate.label} {summary}")
        await self._conclude(job, shapes, verifier.seed, results)

    def _proposer(self, job, op, shapes):
        limit = job.max_candidates or 4
        if job.generator == "agent":
            s = self.settings
            if self.http is None:
                raise AgentError("this worker has no HTTP session for the agent generator")
            agent = AgentGenerator(self.http, s.agent_base_url, s.agent_model, s.agent_api_key,
                                   Budget(limit, s.agent_max_cost_usd, s.agent_usd_per_1k_tokens),
                                   s.agent_playbook_chars)
            agent.start(op, job.dtype, job.target, shapes)
            return agent
        if job.generator == "inductor":
            return ListProposer(inductor_candidates(job.op, limit))
        return ListProposer(template_candidates(job.op, op.search_space, op.default_config, limit,
                                                inspect.getsource(op.module)))

    async def _conclude(self, job, shapes, seed: int, results: list[tuple[Candidate, Verdict]]) -> None:
        passing = [(c, v) for c, v in results if v.ok]
        benchmarked = [(c, v) for c, v in passing if v.benchmarked]
        if not passing:
            reasons = "; ".join(sorted({f"{v.reason_code}: {v.reason}" for _, v in results}))[:500]
            await self._progress(job.job_id, events_pb2.JOB_STATE_NOT_PROMOTED, "finished",
                                 f"no candidate passed verification ({reasons})")
            return
        if not benchmarked:
            await self._progress(job.job_id, events_pb2.JOB_STATE_NOT_PROMOTED, "finished",
                                 f"{len(passing)} candidate(s) verified correct but none was benchmarked ({CPU_NOTE})")
            return
        best_candidate, best = max(benchmarked, key=lambda cv: geomean(cv[1].speedups))
        verdict = decide(best.speedups, wins=best.wins)
        if not verdict.promote:
            await self._progress(job.job_id, events_pb2.JOB_STATE_NOT_PROMOTED, "finished", verdict.reason,
                                 best_speedup=verdict.geomean)
            return
        evidence = {
            "worker": self.settings.worker_id, "target": job.target, "dtype": job.dtype, "shapes": shapes,
            "seed": seed, "repeats": self.settings.bench_repeats,
            "baseline": "the better of eager PyTorch and torch.compile" if self.settings.compile_baseline
            else "eager PyTorch",
            "generator": job.generator or "template", "best": best_candidate.label,
            "best_config": best_candidate.config, "per_shape": best.shapes, "geomean_speedup": verdict.geomean,
            "candidates": [{"label": c.label, "ok": v.ok, "reason_code": v.reason_code, "reason": v.reason,
                            "geomean": geomean(v.speedups)} for c, v in results],
            "toolchain": _toolchain(),
        }
        kernel = await self.registry.PublishKernel(registry_pb2.PublishKernelRequest(
            op=job.op, dtype=job.dtype, hardware=job.target, source=best_candidate.published_source,
            config_json=json.dumps(best_candidate.config, sort_keys=True), speedup=verdict.geomean,
            evidence_json=json.dumps(evidence), job_id=job.job_id), timeout=30)
        await self._progress(job.job_id, events_pb2.JOB_STATE_PROMOTED, "finished", verdict.reason,
                             kernel_id=kernel.id, best_speedup=verdict.geomean)
