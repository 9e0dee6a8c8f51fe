"""Provenance, append-only evidence, the promotion decision log and resolution by capability and shape,
against SQLite and a real PostgreSQL."""

import json

import pytest
import sqlalchemy
from sqlalchemy import text

from tmx_errors import FailedPrecondition, InvalidArgument, NotFound
from tmx_registry.db.migrate import alembic_config, upgrade
from tmx_registry.domain.kernels import Environment, OpSpec, Provenance, RunRecord, reference_hash
from tmx_registry.repository import Repository, make_engine

EVIDENCE = json.dumps({"per_shape": {"8x64": {"speedup": 1.3}}})
REFERENCE = "def reference(x, w, eps=1e-6):\n    return x * w\n"


def bench(shape, speedup):
    return RunRecord("benchmark", shape, True, seed=7, candidate_s=1e-3 / speedup, baseline_s=1e-3, baseline="eager",
                     speedup=speedup, pairs_won=7, pairs=7)


def publish(repo, source, speedup, hardware="cpu", job="j", runs=(), **kw):
    return repo.publish_kernel("rmsnorm", "float32", hardware, source, "{}", speedup, EVIDENCE, job, runs=runs, **kw)


def test_an_artifact_keeps_its_provenance_environment_runs_and_op_spec(repo):
    provenance = Provenance("agent", "qwen-coder", "sha256:abc", "forge-1", '{"torch": "2.13.0"}')
    environment = Environment("NVIDIA H100 80GB HBM3", "sm90", "cuda 12.8", "2.13.0", "3.5.0")
    runs = (RunRecord("verification", (8, 64), True, seed=7), bench((8, 64), 1.3))
    kernel, created = publish(repo, "src", 1.3, "cuda-sm90", "job1", runs, provenance=provenance,
                              environment=environment, op_spec=OpSpec("rmsnorm", REFERENCE, '{"float32": {}}'))
    assert created and kernel.provenance == provenance and kernel.environment == environment
    assert kernel.op_reference_hash == reference_hash(REFERENCE) and kernel.status == "promoted"
    stored = repo.get_kernel(kernel.id)
    assert stored.provenance == provenance and stored.environment == environment
    spec = repo.get_op_spec("rmsnorm")
    assert spec.reference_source == REFERENCE and spec.reference_hash == kernel.op_reference_hash
    assert [(r.kind, r.shape, r.speedup, r.job_id) for r in repo.list_runs(kernel.id)] == [
        ("verification", (8, 64), 0.0, "job1"), ("benchmark", (8, 64), 1.3, "job1")]
    # the same artifact verified again by another job: one artifact, its runs appended as further evidence
    again, created = publish(repo, "src", 1.3, "cuda-sm90", "job2", (bench((8, 64), 1.25),))
    assert not created and again.id == kernel.id
    # a retried publish of the same job adds nothing
    publish(repo, "src", 1.3, "cuda-sm90", "job2", (bench((8, 64), 1.25),))
    assert [(r.job_id, r.speedup) for r in repo.list_runs(kernel.id) if r.kind == "benchmark"] == [
        ("job1", 1.3), ("job2", 1.25)]
    with pytest.raises(NotFound):
        repo.get_op_spec("rmsnorm", "sha256:other")
    with pytest.raises(NotFound):
        repo.list_runs("missing")


@pytest.mark.parametrize("runs, op_spec, field", [
    ((RunRecord("guess", (8, 64), True),), None, "runs"),
    ((RunRecord("benchmark", (), True),), None, "runs"),
    ((), OpSpec("softmax", REFERENCE), "op_spec.name"),
    ((), OpSpec("rmsnorm", "  "), "op_spec.reference_source"),
])
def test_bad_evidence_is_refused_by_field(repo, runs, op_spec, field):
    with pytest.raises(InvalidArgument) as info:
        publish(repo, "src", 1.3, runs=runs, op_spec=op_spec)
    assert info.value.field == field
    assert repo.list_kernels() == []  # nothing half-stored


@pytest.mark.parametrize("table", ["kernel_runs", "kernel_decisions"])
def test_the_database_refuses_to_change_or_delete_evidence(repo, table):
    publish(repo, "src", 1.3, runs=(bench((8, 64), 1.3),))
    with repo.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1
    for statement in (f"UPDATE {table} SET created_at_ms = 0", f"DELETE FROM {table}"):
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
            with repo.engine.begin() as conn:
                conn.execute(text(statement))
    with repo.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE created_at_ms > 0")).scalar() == 1


def test_the_decision_log_promotes_supersedes_revokes_and_reinstates(repo):
    a, _ = publish(repo, "a", 1.2)
    b, _ = publish(repo, "b", 1.5)  # beats a
    c, _ = publish(repo, "c", 1.3)  # passes, but b stays the default
    assert [repo.get_kernel(k.id).status for k in (a, b, c)] == ["superseded", "promoted", "superseded"]
    assert repo.resolve("rmsnorm", "float32", "cpu").id == b.id
    revoked = repo.revoke(b.id, "wrong results on bf16 inputs at long rows", "alice")
    assert revoked.status == "revoked"
    assert repo.get_kernel(c.id).status == "promoted"  # the best remaining one is the default again
    assert repo.resolve("rmsnorm", "float32", "cpu").id == c.id
    log = [(d.kernel_id, d.decision) for d in reversed(repo.list_decisions(op="rmsnorm"))]
    assert log == [(a.id, "promoted"), (a.id, "superseded"), (b.id, "promoted"), (c.id, "promoted"),
                   (c.id, "superseded"), (b.id, "revoked"), (c.id, "promoted")]
    assert repo.list_decisions(kernel_id=b.id)[0].actor == "alice"
    assert {k.id for k in repo.list_kernels()} == {a.id, c.id}
    assert {k.id for k in repo.list_kernels(include_revoked=True)} == {a.id, b.id, c.id}
    # a revoked artifact published again stays revoked: it is not resurrected by a new job
    again, created = publish(repo, "b", 1.5, job="later")
    assert not created and again.status == "revoked"
    with pytest.raises(FailedPrecondition):
        repo.revoke(b.id, "again", "alice")
    with pytest.raises(InvalidArgument):
        repo.revoke(a.id, " ", "alice")
    with pytest.raises(NotFound):
        repo.revoke("missing", "why", "alice")


def test_resolve_prefers_the_exact_device_then_the_closest_lower_capability(repo):
    sm80, _ = publish(repo, "ampere", 1.8, "cuda-sm80")
    sm90, _ = publish(repo, "hopper", 1.3, "cuda-sm90")
    publish(repo, "cpu", 1.4, "cpu")
    assert repo.resolve("rmsnorm", "float32", "cuda-sm90").id == sm90.id  # exact, though slower on paper
    assert repo.resolve("rmsnorm", "float32", "cuda-sm100").id == sm90.id  # closest lower capability
    assert repo.resolve("rmsnorm", "float32", "cuda-sm89").id == sm80.id  # sm90 code cannot serve sm89
    assert repo.resolve("rmsnorm", "float32", "cuda-sm80").id == sm80.id
    with pytest.raises(NotFound):
        repo.resolve("rmsnorm", "float32", "cuda-sm75")
    with pytest.raises(NotFound):
        repo.resolve("rmsnorm", "float32", "rocm-gfx942")


def test_resolve_by_shape_uses_the_speedup_measured_at_that_shape(repo):
    wide, _ = publish(repo, "wide", 1.5, runs=(bench((4096, 4096), 1.2), bench((8, 64), 1.9)))
    narrow, _ = publish(repo, "narrow", 1.3, runs=(bench((4096, 4096), 1.6),))
    assert repo.resolve("rmsnorm", "float32", "cpu").id == wide.id  # best geometric mean
    assert repo.resolve("rmsnorm", "float32", "cpu", (4096, 4096)).id == narrow.id  # best where it runs
    assert repo.resolve("rmsnorm", "float32", "cpu", (8, 64)).id == wide.id  # only one measured there
    assert repo.resolve("rmsnorm", "float32", "cpu", (5, 7)).id == wide.id  # measured nowhere: geometric mean


def test_upgrading_a_database_with_kernels_backfills_the_decision_log(database_url):
    from alembic import command

    command.upgrade(alembic_config(database_url), "0001")
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO kernels (id, op, dtype, hardware, content_hash, source, config_json, speedup, evidence_json, "
            "job_id, created_at_ms) VALUES ('k1', 'rmsnorm', 'float32', 'cpu', 'sha256:x', 's', '{}', 1.3, '{}', "
            "'', 5)"))
    upgrade(database_url)
    repo = Repository(engine)
    kernel = repo.get_kernel("k1")
    assert kernel.status == "promoted" and kernel.provenance == Provenance()
    assert [(d.kernel_id, d.decision, d.created_at_ms) for d in repo.list_decisions()] == [("k1", "promoted", 5)]
    engine.dispose()
