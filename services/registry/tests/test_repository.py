"""The repository against SQLite and a real PostgreSQL, migrated by Alembic."""

import json

import pytest
from sqlalchemy import inspect

from tmx_errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from tmx_registry.db.migrate import upgrade
from tmx_registry.domain.jobs import JobSpec, JobState
from tmx_registry.repository import Repository, make_engine

EVIDENCE = json.dumps({"per_shape": {"8x64": {"speedup": 1.3}}})


def spec(**kw):
    return JobSpec(**{"op": "rmsnorm", "dtype": "float32", "shapes": ((8, 64), (3, 33)), "target": "cpu", **kw})


def test_migration_creates_the_schema_and_is_idempotent(database_url):
    upgrade(database_url)
    upgrade(database_url)
    engine = make_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"kernel_jobs", "kernels", "alembic_version"} <= tables


def test_job_lifecycle_and_idempotent_progress(repo):
    job = repo.create_job(spec())
    assert job.state == JobState.QUEUED and job.spec.shapes == ((8, 64), (3, 33))
    assert [j.id for j in repo.undispatched_jobs()] == [job.id]
    repo.mark_dispatched(job.id)
    assert repo.undispatched_jobs() == []
    assert repo.apply_progress(job.id, JobState.RUNNING, "", "", 0).state == JobState.RUNNING
    done = repo.apply_progress(job.id, JobState.NOT_PROMOTED, "too slow", "", 0.5)
    assert done.state == JobState.NOT_PROMOTED and done.reason == "too slow" and done.best_speedup == 0.5
    assert repo.apply_progress(job.id, JobState.RUNNING, "late", "", 0) is None  # terminal stays terminal
    assert repo.get_job(job.id).reason == "too slow"
    with pytest.raises(FailedPrecondition):
        repo.cancel_job(job.id)
    other = repo.create_job(spec())
    assert repo.cancel_job(other.id).state == JobState.CANCELLED
    assert [j.id for j in repo.list_jobs()] == [other.id, job.id]
    with pytest.raises(NotFound):
        repo.get_job("missing")


@pytest.mark.parametrize("kwargs, field", [
    ({"op": "RMS Norm"}, "op"), ({"dtype": "float64"}, "dtype"), ({"target": "tpu"}, "target"),
    ({"shapes": ()}, "shapes"), ({"shapes": ((0, 4),)}, "shapes"), ({"shapes": ((1 << 20, 1 << 20),)}, "shapes"),
    ({"max_candidates": 0}, "max_candidates"), ({"generator": "magic"}, "generator"),
])
def test_bad_jobs_are_rejected_by_field(repo, kwargs, field):
    with pytest.raises(InvalidArgument) as info:
        repo.create_job(spec(**kwargs))
    assert info.value.field == field


def test_same_artifact_is_stored_once_and_resolve_picks_the_best(repo):
    a, created = repo.publish_kernel("rmsnorm", "float32", "cpu", "src-a", '{"b": 1, "a": 2}', 1.2, EVIDENCE, "j1")
    assert created and a.content_hash.startswith("sha256:")
    again, created = repo.publish_kernel("rmsnorm", "float32", "cpu", "src-a", '{"a": 2, "b": 1}', 1.2, EVIDENCE, "j2")
    assert not created and again.id == a.id  # same source + same config (any key order) = one artifact
    b, _ = repo.publish_kernel("rmsnorm", "float32", "cpu", "src-b", "{}", 1.5, EVIDENCE, "j3")
    repo.publish_kernel("rmsnorm", "float32", "cuda-sm90", "src-c", "{}", 3.0, EVIDENCE, "j4")
    assert repo.resolve("rmsnorm", "float32", "cpu").id == b.id
    assert repo.resolve("rmsnorm", "float32", "cuda-sm90").speedup == 3.0
    assert len(repo.list_kernels(op="rmsnorm")) == 3 and len(repo.list_kernels(hardware="cpu")) == 2
    with pytest.raises(NotFound):
        repo.resolve("rmsnorm", "bfloat16", "cpu")


@pytest.mark.parametrize("speedup, evidence, field", [(1.05, EVIDENCE, "speedup"), (1.5, "", "evidence_json"),
                                                      (1.5, "[]", "evidence_json")])
def test_unverified_kernels_are_refused(repo, speedup, evidence, field):
    with pytest.raises(InvalidArgument) as info:
        repo.publish_kernel("rmsnorm", "float32", "cpu", "src", "{}", speedup, evidence, "")
    assert info.value.field == field


def test_a_database_that_is_down_is_unavailable_not_a_crash(tmp_path):
    repo = Repository(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"))
    with pytest.raises(Unavailable):
        repo.list_jobs()


def test_a_custom_op_job_carries_its_reference_and_takes_a_file_candidate(repo):
    reference = "def make_inputs(shape, dtype, seed, device='cpu'): ...\ndef reference(x): ...\n"
    job = repo.create_job(spec(op="my_op", generator="file", candidate_source="def launch(x): ...",
                               reference_source=reference))
    assert repo.get_job(job.id).spec.reference_source == reference
    with pytest.raises(InvalidArgument, match="takes generator 'file' or 'agent'") as info:
        repo.create_job(spec(op="my_op", generator="inductor", reference_source=reference))
    assert info.value.field == "generator"
    with pytest.raises(InvalidArgument, match="not valid Python") as info:
        repo.create_job(spec(op="my_op", generator="file", candidate_source="def launch(x): ...",
                             reference_source="def reference(:"))
    assert info.value.field == "reference_source"


def test_a_file_job_carries_a_candidate_that_parses(repo):
    job = repo.create_job(spec(generator="file", candidate_source="def launch(x, w):\n    return x * w\n"))
    assert repo.get_job(job.id).spec.candidate_source.startswith("def launch")
    for kwargs, message in (({"generator": "file"}, "needs the candidate"),
                            ({"generator": "file", "candidate_source": "def launch(:"}, "not valid Python: line 1"),
                            ({"generator": "file", "candidate_source": "x = 1\n" * 60_000}, "larger than 256 KiB"),
                            ({"candidate_source": "def launch(x): ..."}, "only for generator 'file'")):
        with pytest.raises(InvalidArgument, match=message) as info:
            repo.create_job(spec(**kwargs))
        assert info.value.field == "candidate_source"
