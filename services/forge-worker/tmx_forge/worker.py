"""Turns one KernelJob into a verdict: generate candidates, verify and time each in a sandbox, promote the
winner to the registry only when it clears the promotion rule, and report every step as JobProgress."""

from __future__ import annotations

import inspect
import json
import logging
import math
import platform
import secrets

import grpc

from tensormux.events.v1 import events_pb2
from tensormux.forge.v1 import forge_pb2, forge_pb2_grpc
from tensormux.registry.v1 import registry_pb2, registry_pb2_grpc
from tmx_eventbus import EventBus, subjects
from tmx_forge.domain.candidates import template_configs
from tmx_forge.domain.promotion import decide
from tmx_forge.settings import Settings
from tmx_forge.verifier import CandidateResult, verify

log = logging.getLogger(__name__)

TERMINAL = {events_pb2.JOB_STATE_PROMOTED, events_pb2.JOB_STATE_NOT_PROMOTED, events_pb2.JOB_STATE_FAILED,
            events_pb2.JOB_STATE_CANCELLED}
CPU_NOTE = ("on the cpu target Triton runs under its interpreter, so its timings are not those of a compiled "
            "kernel; GPU targets measure compiled kernels")


def _geomean(result: CandidateResult) -> float:
    speedups = [s for s in result.speedups.values() if s > 0]
    return math.exp(sum(map(math.log, speedups)) / len(speedups)) if speedups else 0.0


def _toolchain() -> dict:
    import torch
    import triton

    return {"torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine()}


class JobRunner:
    def __init__(self, bus: EventBus, channel: grpc.aio.Channel, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
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
        if job.dtype not in ("float32", "float16", "bfloat16"):
            await self._progress(job.job_id, events_pb2.JOB_STATE_FAILED, "failed", f"unsupported dtype {job.dtype}")
            return
        shapes = [list(s.dims) for s in job.shapes]
        configs = template_configs(op.search_space, op.default_config, job.max_candidates or 4)
        seed = secrets.randbelow(2**31)
        results: list[CandidateResult] = []
        for index, config in enumerate(configs, 1):
            if await self._state(job.job_id) == events_pb2.JOB_STATE_CANCELLED:
                log.info("job cancelled", extra={"job": job.job_id})
                return
            result = await verify(job.op, job.dtype, job.target, shapes, config, seed, self.settings.bench_repeats,
                                  self.settings.candidate_timeout_s)
            results.append(result)
            summary = (f"passed, geomean {_geomean(result):.3g}x" if result.ok else f"rejected: {result.reason}")
            await self._progress(job.job_id, events_pb2.JOB_STATE_RUNNING, f"candidate {index}/{len(configs)}",
                                 f"{json.dumps(config, sort_keys=True)} {summary}")
        await self._conclude(job, op, shapes, seed, results)

    async def _conclude(self, job, op, shapes, seed: int, results: list[CandidateResult]) -> None:
        passing = [r for r in results if r.ok]
        if not passing:
            reasons = "; ".join(sorted({r.reason for r in results}))[:500]
            await self._progress(job.job_id, events_pb2.JOB_STATE_NOT_PROMOTED, "finished",
                                 f"no candidate passed verification ({reasons})")
            return
        best = max(passing, key=_geomean)
        verdict = decide(best.speedups)
        evidence = {
            "worker": self.settings.worker_id, "target": job.target, "dtype": job.dtype, "shapes": shapes,
            "seed": seed, "repeats": self.settings.bench_repeats, "baseline": "eager PyTorch",
            "best_config": best.config, "per_shape": best.shapes, "geomean_speedup": verdict.geomean,
            "candidates": [{"config": r.config, "ok": r.ok, "reason": r.reason, "geomean": _geomean(r)}
                           for r in results],
            "toolchain": _toolchain(),
        }
        if not verdict.promote:
            reason = verdict.reason + (f" ({CPU_NOTE})" if job.target == "cpu" else "")
            await self._progress(job.job_id, events_pb2.JOB_STATE_NOT_PROMOTED, "finished", reason,
                                 best_speedup=verdict.geomean)
            return
        kernel = await self.registry.PublishKernel(registry_pb2.PublishKernelRequest(
            op=job.op, dtype=job.dtype, hardware=job.target, source=inspect.getsource(op.module),
            config_json=json.dumps(best.config, sort_keys=True), speedup=verdict.geomean,
            evidence_json=json.dumps(evidence), job_id=job.job_id), timeout=30)
        await self._progress(job.job_id, events_pb2.JOB_STATE_PROMOTED, "finished", verdict.reason,
                             kernel_id=kernel.id, best_speedup=verdict.geomean)
