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
