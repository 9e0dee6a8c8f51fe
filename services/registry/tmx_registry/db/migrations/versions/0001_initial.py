"""kernel jobs and kernels

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kernel_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("op", sa.String(64), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("shapes_json", sa.Text, nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("generator", sa.String(32), nullable=False),
        sa.Column("max_candidates", sa.Integer, nullable=False),
        sa.Column("time_budget_s", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("kernel_id", sa.String(32), nullable=False),
        sa.Column("best_speedup", sa.Float, nullable=False),
        sa.Column("dispatched", sa.Boolean, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_kernel_jobs_state", "kernel_jobs", ["state"])
    op.create_table(
        "kernels",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("op", sa.String(64), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("hardware", sa.String(32), nullable=False),
        sa.Column("content_hash", sa.String(80), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("speedup", sa.Float, nullable=False),
        sa.Column("evidence_json", sa.Text, nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("content_hash", "dtype", "hardware", name="uq_kernels_artifact"),
    )
    op.create_index("ix_kernels_resolve", "kernels", ["op", "dtype", "hardware"])


def downgrade() -> None:
    op.drop_index("ix_kernels_resolve", "kernels")
    op.drop_table("kernels")
    op.drop_index("ix_kernel_jobs_state", "kernel_jobs")
    op.drop_table("kernel_jobs")
