"""The SQL adapter: jobs and kernels in PostgreSQL or SQLite through SQLAlchemy 2 (sync, run in threads)."""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tmx_errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from tmx_registry.db.models import KernelDecisionRow, KernelJobRow, KernelRow, KernelRunRow, OpSpecRow
from tmx_registry.domain.jobs import JobSpec, JobState, WorkerInfo, next_state, validate_job
from tmx_registry.domain.kernels import (PROMOTED, REVOKED, SUPERSEDED, DecisionEntry, DecisionRecord, Eligible,
                                         Environment, OpSpec, Provenance, RunRecord, content_hash, on_publish,
                                         on_revoke, rank, reference_hash, validate_publication, validate_runs)


@dataclass(frozen=True)
class Job:
    id: str
    spec: JobSpec
    state: JobState
    reason: str
    kernel_id: str
    best_speedup: float
    dispatched: bool
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True)
class Kernel:
    id: str
    op: str
    dtype: str
    hardware: str
    content_hash: str
    source: str
    config_json: str
    speedup: float
    evidence_json: str
    job_id: str
    created_at_ms: int
    status: str = PROMOTED
    op_reference_hash: str = ""
    provenance: Provenance = Provenance()
    environment: Environment = Environment()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _job(row: KernelJobRow) -> Job:
    spec = JobSpec(row.op, row.dtype, tuple(tuple(s) for s in json.loads(row.shapes_json)), row.target, row.generator,
                   row.max_candidates, row.time_budget_s, row.candidate_source, row.reference_source)
    return Job(row.id, spec, JobState(row.state), row.reason, row.kernel_id, row.best_speedup, row.dispatched,
               row.created_at_ms, row.updated_at_ms)


def _kernel(row: KernelRow) -> Kernel:
    return Kernel(row.id, row.op, row.dtype, row.hardware, row.content_hash, row.source, row.config_json, row.speedup,
                  row.evidence_json, row.job_id, row.created_at_ms, row.status, row.op_reference_hash,
                  Provenance(row.generator, row.model, row.prompt_hash, row.worker_id, row.toolchain_json),
                  Environment(row.device, row.capability, row.driver, row.torch_version, row.triton_version))


def _run(row: KernelRunRow) -> RunRecord:
    return RunRecord(row.kind, tuple(json.loads(row.shape_json)), row.passed, row.seed, row.candidate_s, row.baseline_s,
                     row.baseline, row.speedup, row.pairs_won, row.pairs, row.job_id, row.created_at_ms)


def _decision(row: KernelDecisionRow) -> DecisionRecord:
    return DecisionRecord(row.kernel_id, row.op, row.dtype, row.hardware, row.decision, row.reason, row.actor,
                          row.created_at_ms)


def _db_errors(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except OperationalError as exc:
            raise Unavailable(f"database unavailable: {exc.orig.__class__.__name__}") from exc

    return wrapper


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class Repository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    def _tx(self) -> Session:
        return self._session.begin()

    # --- jobs ----------------------------------------------------------------------------------------
    @_db_errors
    def create_job(self, spec: JobSpec, workers: Sequence[WorkerInfo] = ()) -> Job:
        """Store a valid job (`validate_job`, against the `workers` of its target alive now)."""
        validate_job(spec, workers)
        now = _now_ms()
        row = KernelJobRow(
            id=uuid.uuid4().hex, op=spec.op, dtype=spec.dtype, shapes_json=json.dumps([list(s) for s in spec.shapes]),
            target=spec.target, generator=spec.generator, max_candidates=spec.max_candidates,
            time_budget_s=spec.time_budget_s, candidate_source=spec.candidate_source,
            reference_source=spec.reference_source, state=JobState.QUEUED.value, reason="", kernel_id="", best_speedup=0.0,
            dispatched=False, created_at_ms=now, updated_at_ms=now,
        )
        with self._tx() as session:
            session.add(row)
        return _job(row)

    @_db_errors
    def get_job(self, job_id: str) -> Job:
        with self._session() as session:
            row = session.get(KernelJobRow, job_id)
            if row is None:
                raise NotFound(f"job {job_id!r} not found")
            return _job(row)

    @_db_errors
    def list_jobs(self, limit: int = 50) -> list[Job]:
        with self._session() as session:
            rows = session.scalars(select(KernelJobRow).order_by(KernelJobRow.created_at_ms.desc()).limit(limit))
            return [_job(r) for r in rows]

    @_db_errors
    def undispatched_jobs(self) -> list[Job]:
        with self._session() as session:
            rows = session.scalars(select(KernelJobRow).where(
                KernelJobRow.dispatched.is_(False), KernelJobRow.state == JobState.QUEUED.value))
            return [_job(r) for r in rows]

    @_db_errors
    def mark_dispatched(self, job_id: str) -> None:
        with self._tx() as session:
            row = session.get(KernelJobRow, job_id)
            if row is not None:
                row.dispatched = True

    @_db_errors
    def apply_progress(self, job_id: str, reported: JobState, message: str, kernel_id: str,
                       best_speedup: float) -> Job | None:
        """Apply a worker's report; returns the updated job, or None when the report changes nothing."""
        with self._tx() as session:
            row = session.get(KernelJobRow, job_id, with_for_update=True)
            if row is None:
                return None
            state = next_state(JobState(row.state), reported)
            if state is None:
                return None
            row.state = state.value
            row.reason = message or row.reason
            row.kernel_id = kernel_id or row.kernel_id
            row.best_speedup = max(row.best_speedup, best_speedup)
            row.updated_at_ms = _now_ms()
            return _job(row)

    @_db_errors
    def cancel_job(self, job_id: str) -> Job:
        with self._tx() as session:
            row = session.get(KernelJobRow, job_id, with_for_update=True)
            if row is None:
                raise NotFound(f"job {job_id!r} not found")
            if JobState(row.state).terminal:
                raise FailedPrecondition(f"job {job_id} already ended as {row.state}")
            row.state, row.reason, row.updated_at_ms = JobState.CANCELLED.value, "cancelled by request", _now_ms()
            return _job(row)

    # --- kernels -------------------------------------------------------------------------------------
    @_db_errors
    def publish_kernel(self, op: str, dtype: str, hardware: str, source: str, config_json: str, speedup: float,
                       evidence_json: str, job_id: str, *, provenance: Provenance = Provenance(),
                       environment: Environment = Environment(), runs: tuple[RunRecord, ...] = (),
                       op_spec: OpSpec | None = None) -> tuple[Kernel, bool]:
        """Store a verified kernel with its provenance, environment, runs and op spec, and log the promotion
        decision, in one transaction. The same artifact (content hash) for the same dtype and hardware is stored
        once: publishing it again appends the new runs as further evidence (a job's runs once) and returns the
        existing kernel. Returns (kernel, created)."""
        validate_publication(op, dtype, hardware, source, speedup, evidence_json)
        validate_runs(list(runs))
        digest = content_hash(source, config_json)
        for _attempt in range(2):  # a concurrent publish of the same artifact may win the race: then append
            try:
                with self._tx() as session:
                    existing = session.scalars(select(KernelRow).where(
                        KernelRow.content_hash == digest, KernelRow.dtype == dtype, KernelRow.hardware == hardware,
                    )).first()
                    if existing is not None:
                        self._add_runs(session, existing.id, job_id, runs)
                        return _kernel(existing), False
                    ref_hash = self._add_op_spec(session, op, op_spec) if op_spec is not None else ""
                    row = KernelRow(
                        id=uuid.uuid4().hex, op=op, dtype=dtype, hardware=hardware, content_hash=digest,
                        source=source, config_json=config_json or "{}", speedup=speedup, evidence_json=evidence_json,
                        job_id=job_id, created_at_ms=_now_ms(), status=PROMOTED, op_reference_hash=ref_hash,
                        generator=provenance.generator, model=provenance.model, prompt_hash=provenance.prompt_hash,
                        worker_id=provenance.worker_id, toolchain_json=provenance.toolchain_json or "{}",
                        device=environment.device, capability=environment.capability, driver=environment.driver,
                        torch_version=environment.torch, triton_version=environment.triton)
                    default = self._default(session, op, dtype, hardware)
                    session.add(row)
                    session.flush()
                    self._add_runs(session, row.id, job_id, runs)
                    self._log(session, row, on_publish(row.id, speedup, (default.id, default.speedup) if default
                                                       else None), provenance.worker_id)
                    return _kernel(row), True
            except IntegrityError:
                continue
        raise Unavailable("the kernel was published concurrently; retry")

    @staticmethod
    def _add_op_spec(session: Session, op: str, spec: OpSpec) -> str:
        if spec.name and spec.name != op:
            raise InvalidArgument("op_spec.name", f"must be the kernel's op {op!r}; got {spec.name!r}")
        if not spec.reference_source.strip():
            raise InvalidArgument("op_spec.reference_source", "is required with an op spec")
        digest = reference_hash(spec.reference_source)
        known = session.scalars(select(OpSpecRow).where(OpSpecRow.name == op, OpSpecRow.reference_hash == digest)).first()
        if known is None:
            session.add(OpSpecRow(name=op, reference_hash=digest, reference_source=spec.reference_source,
                                  tolerance_json=spec.tolerance_json or "{}", created_at_ms=_now_ms()))
        return digest

    @staticmethod
    def _add_runs(session: Session, kernel_id: str, job_id: str, runs: tuple[RunRecord, ...]) -> None:
        seen = set(session.execute(select(KernelRunRow.kind, KernelRunRow.shape_json).where(
            KernelRunRow.kernel_id == kernel_id, KernelRunRow.job_id == job_id)).tuples())
        now = _now_ms()
        for run in runs:
            shape_json = json.dumps(list(run.shape))
            if (run.kind, shape_json) in seen:
                continue  # this job's run is already recorded (a retried publish)
            seen.add((run.kind, shape_json))
            session.add(KernelRunRow(kernel_id=kernel_id, job_id=job_id, kind=run.kind, shape_json=shape_json,
                                     passed=run.passed, seed=run.seed, candidate_s=run.candidate_s,
                                     baseline_s=run.baseline_s, baseline=run.baseline, speedup=run.speedup,
                                     pairs_won=run.pairs_won, pairs=run.pairs, created_at_ms=now))

    @staticmethod
    def _default(session: Session, op: str, dtype: str, hardware: str) -> KernelRow | None:
        return session.scalars(select(KernelRow).where(
            KernelRow.op == op, KernelRow.dtype == dtype, KernelRow.hardware == hardware,
            KernelRow.status == PROMOTED).with_for_update()).first()

    @staticmethod
    def _log(session: Session, anchor: KernelRow, entries: list[DecisionEntry], actor: str) -> None:
        """Append the decisions and set each kernel's status to its latest one."""
        now = _now_ms()
        for entry in entries:
            session.add(KernelDecisionRow(kernel_id=entry.kernel_id, op=anchor.op, dtype=anchor.dtype,
                                          hardware=anchor.hardware, decision=entry.decision, reason=entry.reason,
                                          actor=actor, created_at_ms=now))
            row = anchor if entry.kernel_id == anchor.id else session.get(KernelRow, entry.kernel_id)
            row.status = entry.decision

    @_db_errors
    def revoke(self, kernel_id: str, reason: str, actor: str) -> Kernel:
        with self._tx() as session:
            row = session.get(KernelRow, kernel_id, with_for_update=True)
            if row is None:
                raise NotFound(f"kernel {kernel_id!r} not found")
            if row.status == REVOKED:
                raise FailedPrecondition(f"kernel {kernel_id} is already revoked")
            was_default = row.status == PROMOTED
            next_best = session.scalars(select(KernelRow.id).where(
                KernelRow.op == row.op, KernelRow.dtype == row.dtype, KernelRow.hardware == row.hardware,
                KernelRow.status == SUPERSEDED, KernelRow.id != row.id,
            ).order_by(KernelRow.speedup.desc(), KernelRow.created_at_ms.desc())).first()
            self._log(session, row, on_revoke(row.id, reason, was_default, next_best), actor)
            return _kernel(row)

    @_db_errors
    def get_kernel(self, kernel_id: str) -> Kernel:
        with self._session() as session:
            row = session.get(KernelRow, kernel_id)
            if row is None:
                raise NotFound(f"kernel {kernel_id!r} not found")
            return _kernel(row)

    @_db_errors
    def list_kernels(self, op: str = "", hardware: str = "", include_revoked: bool = False) -> list[Kernel]:
        query = select(KernelRow).order_by(KernelRow.created_at_ms.desc())
        if op:
            query = query.where(KernelRow.op == op)
        if hardware:
            query = query.where(KernelRow.hardware == hardware)
        if not include_revoked:
            query = query.where(KernelRow.status != REVOKED)
        with self._session() as session:
            return [_kernel(r) for r in session.scalars(query)]

    @_db_errors
    def resolve(self, op: str, dtype: str, hardware: str, shape: tuple[int, ...] = ()) -> Kernel:
        """The kernel that should serve (op, dtype) on `hardware` (at `shape`): see `domain.kernels.rank`."""
        with self._session() as session:
            rows = {r.id: r for r in session.scalars(select(KernelRow).where(
                KernelRow.op == op, KernelRow.dtype == dtype, KernelRow.status != REVOKED))}
            at_shape: dict[str, dict[tuple[int, ...], float]] = {}
            if shape and rows:
                for run in session.scalars(select(KernelRunRow).where(
                        KernelRunRow.kernel_id.in_(list(rows)), KernelRunRow.kind == "benchmark",
                        KernelRunRow.shape_json == json.dumps(list(shape)), KernelRunRow.passed.is_(True))):
                    shapes = at_shape.setdefault(run.kernel_id, {})
                    shapes[tuple(shape)] = max(shapes.get(tuple(shape), 0.0), run.speedup)
            ranked = rank([Eligible(r.id, r.hardware, r.speedup, r.created_at_ms, at_shape.get(r.id, {}))
                           for r in rows.values()], hardware, tuple(shape))
            if not ranked:
                raise NotFound(f"no verified kernel for op={op} dtype={dtype} that can serve hardware={hardware}")
            return _kernel(rows[ranked[0].kernel_id])

    @_db_errors
    def list_runs(self, kernel_id: str) -> list[RunRecord]:
        with self._session() as session:
            if session.get(KernelRow, kernel_id) is None:
                raise NotFound(f"kernel {kernel_id!r} not found")
            return [_run(r) for r in session.scalars(
                select(KernelRunRow).where(KernelRunRow.kernel_id == kernel_id).order_by(KernelRunRow.id))]

    @_db_errors
    def list_decisions(self, op: str = "", kernel_id: str = "", limit: int = 100) -> list[DecisionRecord]:
        query = select(KernelDecisionRow).order_by(KernelDecisionRow.id.desc()).limit(limit)
        if op:
            query = query.where(KernelDecisionRow.op == op)
        if kernel_id:
            query = query.where(KernelDecisionRow.kernel_id == kernel_id)
        with self._session() as session:
            return [_decision(r) for r in session.scalars(query)]

    @_db_errors
    def get_op_spec(self, name: str, digest: str = "") -> OpSpec:
        query = select(OpSpecRow).where(OpSpecRow.name == name).order_by(OpSpecRow.id.desc())
        if digest:
            query = query.where(OpSpecRow.reference_hash == digest)
        with self._session() as session:
            row = session.scalars(query).first()
            if row is None:
                raise NotFound(f"no op spec {name!r}{' ' + digest if digest else ''}")
            return OpSpec(row.name, row.reference_source, row.tolerance_json, row.reference_hash, row.created_at_ms)
