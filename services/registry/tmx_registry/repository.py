"""The SQL adapter: jobs and kernels in PostgreSQL or SQLite through SQLAlchemy 2 (sync, run in threads)."""

from __future__ import annotations

import functools
import json
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tmx_errors import FailedPrecondition, NotFound, Unavailable
from tmx_registry.db.models import KernelJobRow, KernelRow
from tmx_registry.domain.jobs import JobSpec, JobState, next_state, validate_job
from tmx_registry.domain.kernels import content_hash, validate_publication


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


def _now_ms() -> int:
    return int(time.time() * 1000)


def _job(row: KernelJobRow) -> Job:
    spec = JobSpec(row.op, row.dtype, tuple(tuple(s) for s in json.loads(row.shapes_json)), row.target, row.generator,
                   row.max_candidates, row.time_budget_s)
    return Job(row.id, spec, JobState(row.state), row.reason, row.kernel_id, row.best_speedup, row.dispatched,
               row.created_at_ms, row.updated_at_ms)


def _kernel(row: KernelRow) -> Kernel:
    return Kernel(row.id, row.op, row.dtype, row.hardware, row.content_hash, row.source, row.config_json, row.speedup,
                  row.evidence_json, row.job_id, row.created_at_ms)


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
    def create_job(self, spec: JobSpec) -> Job:
        validate_job(spec)
        now = _now_ms()
        row = KernelJobRow(
            id=uuid.uuid4().hex, op=spec.op, dtype=spec.dtype, shapes_json=json.dumps([list(s) for s in spec.shapes]),
            target=spec.target, generator=spec.generator, max_candidates=spec.max_candidates,
            time_budget_s=spec.time_budget_s, state=JobState.QUEUED.value, reason="", kernel_id="", best_speedup=0.0,
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
                       evidence_json: str, job_id: str) -> tuple[Kernel, bool]:
        """Store a verified kernel. The same artifact (content hash) for the same dtype and hardware is stored
        once: publishing it again returns the existing one. Returns (kernel, created)."""
        validate_publication(op, dtype, hardware, source, speedup, evidence_json)
        digest = content_hash(source, config_json)
        existing = self._find_artifact(digest, dtype, hardware)
        if existing is not None:
            return existing, False
        row = KernelRow(id=uuid.uuid4().hex, op=op, dtype=dtype, hardware=hardware, content_hash=digest, source=source,
                        config_json=config_json or "{}", speedup=speedup, evidence_json=evidence_json, job_id=job_id,
                        created_at_ms=_now_ms())
        try:
            with self._tx() as session:
                session.add(row)
        except IntegrityError:  # a concurrent publish of the same artifact won the race
            existing = self._find_artifact(digest, dtype, hardware)
            if existing is None:
                raise
            return existing, False
        return _kernel(row), True

    def _find_artifact(self, digest: str, dtype: str, hardware: str) -> Kernel | None:
        with self._session() as session:
            row = session.scalars(select(KernelRow).where(
                KernelRow.content_hash == digest, KernelRow.dtype == dtype, KernelRow.hardware == hardware)).first()
            return _kernel(row) if row else None

    @_db_errors
    def get_kernel(self, kernel_id: str) -> Kernel:
        with self._session() as session:
            row = session.get(KernelRow, kernel_id)
            if row is None:
                raise NotFound(f"kernel {kernel_id!r} not found")
            return _kernel(row)

    @_db_errors
    def list_kernels(self, op: str = "", hardware: str = "") -> list[Kernel]:
        query = select(KernelRow).order_by(KernelRow.created_at_ms.desc())
        if op:
            query = query.where(KernelRow.op == op)
        if hardware:
            query = query.where(KernelRow.hardware == hardware)
        with self._session() as session:
            return [_kernel(r) for r in session.scalars(query)]

    @_db_errors
    def resolve(self, op: str, dtype: str, hardware: str) -> Kernel:
        """The best verified kernel for (op, dtype, hardware): highest speedup, newest on a tie."""
        with self._session() as session:
            row = session.scalars(select(KernelRow).where(
                KernelRow.op == op, KernelRow.dtype == dtype, KernelRow.hardware == hardware,
            ).order_by(KernelRow.speedup.desc(), KernelRow.created_at_ms.desc())).first()
            if row is None:
                raise NotFound(f"no verified kernel for op={op} dtype={dtype} hardware={hardware}")
            return _kernel(row)
