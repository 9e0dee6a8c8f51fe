from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class KernelJobRow(Base):
    __tablename__ = "kernel_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    op: Mapped[str] = mapped_column(String(64))
    dtype: Mapped[str] = mapped_column(String(16))
    shapes_json: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(String(32))
    generator: Mapped[str] = mapped_column(String(32))
    max_candidates: Mapped[int] = mapped_column(Integer)
    time_budget_s: Mapped[float] = mapped_column(Float)
    candidate_source: Mapped[str] = mapped_column(Text, default="")
    reference_source: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    kernel_id: Mapped[str] = mapped_column(String(32), default="")
    best_speedup: Mapped[float] = mapped_column(Float, default=0.0)
    dispatched: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


class KernelRow(Base):
    __tablename__ = "kernels"
    __table_args__ = (
        UniqueConstraint("content_hash", "dtype", "hardware", name="uq_kernels_artifact"),
        Index("ix_kernels_resolve", "op", "dtype", "hardware"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    op: Mapped[str] = mapped_column(String(64))
    dtype: Mapped[str] = mapped_column(String(16))
    hardware: Mapped[str] = mapped_column(String(32))
    content_hash: Mapped[str] = mapped_column(String(80))
    source: Mapped[str] = mapped_column(Text)
    config_json: Mapped[str] = mapped_column(Text)
    speedup: Mapped[float] = mapped_column(Float)
    evidence_json: Mapped[str] = mapped_column(Text)
    job_id: Mapped[str] = mapped_column(String(32), default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="promoted")
    op_reference_hash: Mapped[str] = mapped_column(String(80), default="")
    # provenance
    generator: Mapped[str] = mapped_column(String(32), default="")
    model: Mapped[str] = mapped_column(String(128), default="")
    prompt_hash: Mapped[str] = mapped_column(String(80), default="")
    worker_id: Mapped[str] = mapped_column(String(128), default="")
    toolchain_json: Mapped[str] = mapped_column(Text, default="{}")
    # environment
    device: Mapped[str] = mapped_column(String(128), default="")
    capability: Mapped[str] = mapped_column(String(32), default="")
    driver: Mapped[str] = mapped_column(String(64), default="")
    torch_version: Mapped[str] = mapped_column(String(64), default="")
    triton_version: Mapped[str] = mapped_column(String(64), default="")


class OpSpecRow(Base):
    __tablename__ = "op_specs"
    __table_args__ = (UniqueConstraint("name", "reference_hash", name="uq_op_specs_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    reference_hash: Mapped[str] = mapped_column(String(80))
    reference_source: Mapped[str] = mapped_column(Text)
    tolerance_json: Mapped[str] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class KernelRunRow(Base):
    """Append-only (the database refuses UPDATE and DELETE): one verification or benchmark run at one shape."""

    __tablename__ = "kernel_runs"
    __table_args__ = (UniqueConstraint("kernel_id", "job_id", "kind", "shape_json", name="uq_kernel_runs_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kernel_id: Mapped[str] = mapped_column(String(32), index=True)
    job_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    shape_json: Mapped[str] = mapped_column(Text)
    passed: Mapped[bool] = mapped_column(Boolean)
    seed: Mapped[int] = mapped_column(BigInteger)
    candidate_s: Mapped[float] = mapped_column(Float)
    baseline_s: Mapped[float] = mapped_column(Float)
    baseline: Mapped[str] = mapped_column(String(16))
    speedup: Mapped[float] = mapped_column(Float)
    pairs_won: Mapped[int] = mapped_column(Integer)
    pairs: Mapped[int] = mapped_column(Integer)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class KernelDecisionRow(Base):
    """The promotion decision log, append-only like the runs."""

    __tablename__ = "kernel_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kernel_id: Mapped[str] = mapped_column(String(32), index=True)
    op: Mapped[str] = mapped_column(String(64), index=True)
    dtype: Mapped[str] = mapped_column(String(16))
    hardware: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
