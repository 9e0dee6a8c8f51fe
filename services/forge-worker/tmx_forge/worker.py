"""Turns one KernelJob into a verdict: generate candidates, verify and time each in a sandbox, promote the
winner to the registry only when it clears the promotion rule, and report every step as JobProgress."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
import logging
import platform
import time

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
from tmx_forge.verifier import Limits, ReferenceFailed, Verdict, Verifier

log = logging.getLogger(__name__)

TERMINAL = {events_pb2.JOB_STATE_PROMOTED, events_pb2.JOB_STATE_NOT_PROMOTED, events_pb2.JOB_STATE_FAILED,
            events_pb2.JOB_STATE_CANCELLED}
CPU_NOTE = ("on the cpu target Triton candidates run under the interpreter, which checks correctness but says "
            "nothing of compiled speed; a GPU worker benchmarks them")


RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def _toolchain() -> dict:
    import torch
    import triton

    return {"torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or platform.machine()}


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _environment(target: str) -> registry_pb2.Environment:
    import torch
    import triton

    if target == "cpu":
        return registry_pb2.Environment(device=_cpu_model(), capability="cpu", torch=torch.__version__,
                                        triton=triton.__version__)
    major, minor = torch.cuda.get_device_capability()
    return registry_pb2.Environment(device=torch.cuda.get_device_name(), capability=f"sm{major}{minor}",
                                    driver=f"cuda {torch.version.cuda}", torch=torch.__version__,
                                    triton=triton.__version__)


def _op_spec(op, reference_source: str = "") -> registry_pb2.OpSpec:
    """A library op's reference function, or a custom op's whole reference module."""
    tolerances = {str(dtype).removeprefix("torch."): {"atol": t.atol, "rtol": t.rtol}
                  for dtype, t in op.tolerances.items()}
    return registry_pb2.OpSpec(name=op.name, reference_source=reference_source or inspect.getsource(op.reference),
                               tolerance_json=json.dumps(tolerances, sort_keys=True))


def _runs(verifier: Verifier, verdict: Verdict) -> list[registry_pb2.Run]:
    """The evidence a promotion stores: a verification run per checked shape, a benchmark run per timed one."""
    runs = [registry_pb2.Run(kind="verification", shape=list(shape), passed=True, seed=verifier.seed)
            for shape in verifier.check_shapes]
    for key, rec in verdict.shapes.items():
        runs.append(registry_pb2.Run(
            kind="benchmark", shape=[int(d) for d in key.split("x")], passed=True, seed=verifier.seed,
            candidate_s=rec["candidate_s"], baseline_s=rec["baseline_s"], baseline=rec["baseline"],
            speedup=rec["speedup"], pairs_won=rec["pairs_won"], pairs=rec["pairs"]))
    return runs


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

    async def _patiently(self, call, request, what: str):
        """Call the registry. While it or its database is unreachable the job waits here, retrying with backoff,
        for up to `registry_wait_s` (the job's message stays in progress meanwhile); then the error goes up and
        JetStream redelivers the job later. Nothing is lost either way."""
        deadline = time.monotonic() + self.settings.registry_wait_s
        delay = 0.2
        while True:
            try:
                return await call(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or time.monotonic() + delay > deadline:
                    raise
                log.warning("registry unreachable; the job waits", extra={"call": what, "error": exc.details()})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _state(self, job_id: str) -> int:
        job = await self._patiently(self.forge.GetJob, forge_pb2.GetJobRequest(id=job_id), "GetJob")
        return job.state

    async def _cancelled(self, job_id: str) -> bool:
        """Between candidates: was the job cancelled? An unreachable registry cannot have cancelled it since."""
        try:
            job = await self.forge.GetJob(forge_pb2.GetJobRequest(id=job_id), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in RETRYABLE:
                return False
            raise
        return job.state == events_pb2.JOB_STATE_CANCELLED

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
        shapes = [list(s.dims) for s in job.shapes]
        limits = Limits(wall_s=self.settings.candidate_timeout_s, repeats=self.settings.bench_repeats,
                        compile_baseline=self.settings.compile_baseline, cpu_threads=self.settings.cpu_threads)
        op = None
        try:
            if job.reference_source:  # a custom op: its reference runs in a sandbox the verifier starts
                from tmx_kernels import op_names

                if job.op in op_names():
                    raise ValueError(f"{job.op} is a library op; a custom op needs a name of its own")
                if job.generator not in ("file", "agent"):
                    raise ValueError("a custom op takes generator 'file' or 'agent'")
            else:
                from tmx_kernels import get_op

                op = get_op(job.op)
            verifier = await asyncio.to_thread(functools.partial(
                Verifier, job.op, job.dtype, job.target, shapes, limits, reference_source=job.reference_source))
        except (KeyError, ValueError, ReferenceFailed) as exc:
            await self._progress(job.job_id, events_pb2.JOB_STATE_FAILED, "failed", str(exc).strip('"'))
            return
        try:
            await self._run(job, op, verifier, shapes)
        except ReferenceFailed as exc:  # the job's own reference broke: the job fails, no candidate is blamed
            await self._progress(job.job_id, events_pb2.JOB_STATE_FAILED, "failed", str(exc))
        finally:
            verifier.close()

    async def _run(self, job, op, verifier: Verifier, shapes) -> None:
        try:
            proposer = self._proposer(job, verifier.op, shapes)  # a custom op: the sandboxed reference's spec
        except AgentError as exc:
            await self._progress(job.job_id, events_pb2.JOB_STATE_FAILED, "failed", str(exc))
            return
        results: list[tuple[Candidate, Verdict]] = []
        verdict = None
        budget = job.time_budget_s or 300.0
        deadline, note = time.monotonic() + budget, ""
        while True:
            left = deadline - time.monotonic()
            if left < 1.0:  # the job's time budget: no new candidate starts once it is spent
                note = f"time budget of {budget:g}s spent after {len(results)} candidate(s)"
                break
            # a candidate is also cut at the budget's end (its verdict is then timed_out)
            verifier.limits = dataclasses.replace(verifier.limits,
                                                  wall_s=min(self.settings.candidate_timeout_s, left))
            if await self._cancelled(job.job_id):
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
        await self._conclude(job, op, verifier, results, proposer, note)

    def _proposer(self, job, op, shapes):
        limit = job.max_candidates or 4
        if job.generator == "agent":
            s = self.settings
            if self.http is None:
                raise AgentError("this worker has no HTTP session for the agent generator")
            agent = AgentGenerator(self.http, s.agent_base_url, s.agent_model, s.agent_api_key,
                                   Budget(limit, s.agent_max_cost_usd, s.agent_usd_per_1k_tokens),
                                   s.agent_playbook_chars)
            agent.start(op, job.dtype, job.target, shapes, job.reference_source)
            return agent
        if job.generator == "inductor":
            return ListProposer(inductor_candidates(job.op, limit))
        if job.generator == "file":  # the user's own candidate, untrusted like any other
            return ListProposer([Candidate(job.candidate_source, {}, trusted=False, label="user file")])
        return ListProposer(template_candidates(job.op, op.search_space, op.default_config, limit,
                                                inspect.getsource(op.module)))

    async def _conclude(self, job, op, verifier: Verifier, results: list[tuple[Candidate, Verdict]],
                        proposer, note: str = "") -> None:
        """`note`: why the search stopped early (the time budget), appended to the verdict."""
        shapes, seed = verifier.shapes, verifier.seed
        passing = [(c, v) for c, v in results if v.ok]
        benchmarked = [(c, v) for c, v in passing if v.benchmarked]
        suffix = f"; {note}" if note else ""
        if not passing:
            reasons = "; ".join(sorted({f"{v.reason_code}: {v.reason}" for _, v in results}))[:500]
            await self._progress(job.job_id, events_pb2.JOB_STATE_NOT_PROMOTED, "finished",
                                 (f"no candidate passed verification ({reasons})" if results
                                  else "no candidate was verified") + suffix)
            return
        if not benchmarked:
            await self._progress(job.job_id, events_pb2.JOB_STATE_NOT_PROMOTED, "finished",
                                 f"{len(passing)} candidate(s) verified correct but none was benchmarked ({CPU_NOTE})"
                                 + suffix)
            return
        best_candidate, best = max(benchmarked, key=lambda cv: geomean(cv[1].speedups))
        verdict = decide(best.speedups, wins=best.wins)
        if not verdict.promote:
            await self._progress(job.job_id, events_pb2.JOB_STATE_NOT_PROMOTED, "finished", verdict.reason + suffix,
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
        agent = proposer if isinstance(proposer, AgentGenerator) else None
        request = registry_pb2.PublishKernelRequest(
            op=job.op, dtype=job.dtype, hardware=job.target, source=best_candidate.published_source,
            config_json=json.dumps(best_candidate.config, sort_keys=True), speedup=verdict.geomean,
            evidence_json=json.dumps(evidence), job_id=job.job_id,
            provenance=registry_pb2.Provenance(
                generator=job.generator or "template", model=self.settings.agent_model if agent else "",
                prompt_hash=agent.prompt_hash if agent else "", worker_id=self.settings.worker_id,
                toolchain_json=json.dumps(evidence["toolchain"], sort_keys=True)),
            environment=_environment(job.target), runs=_runs(verifier, best),
            op_spec=_op_spec(verifier.op, job.reference_source))
        # the same artifact is stored once, so a publish retried after a lost reply is harmless
        kernel = await self._patiently(self.registry.PublishKernel, request, "PublishKernel")
        await self._progress(job.job_id, events_pb2.JOB_STATE_PROMOTED, "finished", verdict.reason,
                             kernel_id=kernel.id, best_speedup=verdict.geomean)
