"""provenance: op specs, artifact provenance and environment, append-only runs and decision log, file jobs
and custom-op jobs

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY = ("kernel_runs", "kernel_decisions")

_KERNEL_COLUMNS = (
    ("status", sa.String(16), "promoted"), ("op_reference_hash", sa.String(80), ""),
    ("generator", sa.String(32), ""), ("model", sa.String(128), ""), ("prompt_hash", sa.String(80), ""),
    ("worker_id", sa.String(128), ""), ("toolchain_json", sa.Text, "{}"), ("device", sa.String(128), ""),
    ("capability", sa.String(32), ""), ("driver", sa.String(64), ""), ("torch_version", sa.String(64), ""),
    ("triton_version", sa.String(64), ""),
)


def upgrade() -> None:
    with op.batch_alter_table("kernel_jobs") as batch:
        batch.add_column(sa.Column("candidate_source", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("reference_source", sa.Text, nullable=False, server_default=""))
    with op.batch_alter_table("kernels") as batch:
        for name, type_, default in _KERNEL_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=False, server_default=default))
    op.create_table(
        "op_specs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("reference_hash", sa.String(80), nullable=False),
        sa.Column("reference_source", sa.Text, nullable=False),
        sa.Column("tolerance_json", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("name", "reference_hash", name="uq_op_specs_version"),
    )
    op.create_table(
        "kernel_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kernel_id", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("shape_json", sa.Text, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("candidate_s", sa.Float, nullable=False),
        sa.Column("baseline_s", sa.Float, nullable=False),
        sa.Column("baseline", sa.String(16), nullable=False),
        sa.Column("speedup", sa.Float, nullable=False),
        sa.Column("pairs_won", sa.Integer, nullable=False),
        sa.Column("pairs", sa.Integer, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("kernel_id", "job_id", "kind", "shape_json", name="uq_kernel_runs_once"),
    )
    op.create_index("ix_kernel_runs_kernel_id", "kernel_runs", ["kernel_id"])
    op.create_table(
        "kernel_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kernel_id", sa.String(32), nullable=False),
        sa.Column("op", sa.String(64), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("hardware", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_kernel_decisions_kernel_id", "kernel_decisions", ["kernel_id"])
    op.create_index("ix_kernel_decisions_op", "kernel_decisions", ["op"])
    # every kernel stored before the log existed was promoted when it was published
    op.execute("INSERT INTO kernel_decisions (kernel_id, op, dtype, hardware, decision, reason, actor, created_at_ms) "
               "SELECT id, op, dtype, hardware, 'promoted', 'published before the decision log existed', '', "
               "created_at_ms FROM kernels")
    _append_only()


def _append_only() -> None:
    """The database itself refuses to change or delete evidence, whatever client writes to it."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION tmx_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME; END $$")
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION tmx_append_only()")
    else:
        for table in APPEND_ONLY:
            for action in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION tmx_append_only()")
    op.drop_table("kernel_decisions")
    op.drop_table("kernel_runs")
    op.drop_table("op_specs")
    with op.batch_alter_table("kernels") as batch:
        for name, _, _ in reversed(_KERNEL_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("kernel_jobs") as batch:
        batch.drop_column("reference_source")
        batch.drop_column("candidate_source")
