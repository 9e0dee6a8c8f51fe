"""The whole stack started as `tmx up` starts it (child processes, embedded NATS, SQLite), driven with the
official OpenAI client, a NATS subscriber, gRPC stubs and the tmx command."""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import openai
import pytest

from tensormux.events.v1 import events_pb2
from tensormux.forge.v1 import forge_pb2, forge_pb2_grpc
from tensormux.planner.v1 import planner_pb2, planner_pb2_grpc
from tensormux.registry.v1 import registry_pb2, registry_pb2_grpc
from tmx_cli.stack import SIM_MODEL, Stack, StackConfig
from tmx_eventbus import EventBus, decode, decode_all, subjects

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = StackConfig(data_dir=tmp_path_factory.mktemp("stack"), gateway_port=0, health_port=0, planner_port=0,
                         registry_port=0, nats_port=0, sim_base_port=0, sim_time_scale=0.05, probe_interval_s=0.2)
    stack = Stack(config)
    started = time.perf_counter()
    stack.start(timeout_s=90)
    print(f"\nstack started in {time.perf_counter() - started:.2f}s")
    yield stack
    stack.stop()


@pytest.fixture
def client(stack):
    return openai.OpenAI(base_url=f"{stack.urls['gateway']}/v1", api_key="unused", max_retries=0)


def backends(stack):
    with urllib.request.urlopen(f"{stack.urls['gateway']}/admin/backends", timeout=5) as resp:
        return {b["id"]: b for b in json.load(resp)["backends"]}


def test_children_run_in_process_groups_of_their_own_within_the_callers_session(stack):
    """Ctrl-C in the terminal reaches only `tmx up` (each child leads its own group); the children stay in the
    caller's session, which Linux's autogroup scheduler treats as one: a child in a session of its own got the
    CPU in bursts beside busy CPU engines."""
    for child in stack.children:
        assert os.getpgid(child.proc.pid) == child.proc.pid, child.name
        assert os.getsid(child.proc.pid) == os.getsid(0), child.name


def test_openai_client_chat_streamed_and_not(client):
    reply = client.chat.completions.create(model=SIM_MODEL, messages=[{"role": "user", "content": "Hello!"}],
                                           max_tokens=6)
    assert reply.choices[0].message.content and reply.usage.completion_tokens == 6
    stream = client.chat.completions.create(model="llama-sim", messages=[{"role": "user", "content": "Hello!"}],
                                            max_tokens=5, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.choices[0].message.content.rsplit(" ", 1)[0]  # same deterministic words, one fewer
    assert chunks[-1].usage.completion_tokens == 5
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "model_not_found"


async def test_audit_event_reaches_a_nats_subscriber(stack, client, tmx_async_wait):
    bus = await EventBus.connect(stack.urls["nats"], name="e2e")
    received = []

    async def on_msg(msg):
        received.extend(decode_all(msg.data, msg.headers))  # the gateway packs a pass's events as columns

    sub = await bus.nc.subscribe(subjects.ALL_AUDIT, cb=on_msg)
    raw = await asyncio.to_thread(lambda: client.chat.completions.with_raw_response.create(
        model=SIM_MODEL, messages=[{"role": "user", "content": "audit me"}], max_tokens=3))
    request_id = raw.headers["x-tmx-request-id"]
    await tmx_async_wait(lambda: any(e.request_id == request_id for e in received), 5, what="the audit event")
    event = next(e for e in received if e.request_id == request_id)
    assert event.tenant == "default" and event.http_status == 200 and event.completion_tokens == 3
    assert event.backend_id == raw.headers["x-tmx-backend"]
    await sub.unsubscribe()
    await bus.close()


def test_tmx_audit_tail_decodes_the_stream(stack, client):
    client.chat.completions.create(model=SIM_MODEL, messages=[{"role": "user", "content": "tail"}], max_tokens=1)
    out = subprocess.run([sys.executable, "-m", "tmx_cli.main", "audit", "tail", "--nats-url", stack.urls["nats"],
                          "--from-start", "--count", "1"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    event = json.loads(out.stdout.splitlines()[0])
    assert event["tenant"] == "default" and event["model"] == SIM_MODEL


async def test_a_stopped_engine_is_marked_down_and_no_longer_routed(stack, client, tmx_async_wait):
    await tmx_async_wait(lambda: all(b["state"] == "healthy" for b in backends(stack).values()), 20,
                         what="fleet healthy")
    bus = await EventBus.connect(stack.urls["nats"], name="e2e")
    changes = []

    async def on_msg(msg):
        changes.append(decode(msg.data, msg.headers))

    sub = await bus.nc.subscribe(subjects.health_backend("sim-2"), cb=on_msg)
    stack.stop_child("sim-2")
    await tmx_async_wait(lambda: any(c.current == events_pb2.BACKEND_STATE_UNHEALTHY for c in changes), 20,
                         what="health publishes sim-2 unhealthy")
    await tmx_async_wait(lambda: backends(stack)["sim-2"]["state"] == "unhealthy", 10, what="gateway applies it")
    served_before = {k: b["served"] for k, b in backends(stack).items()}
    for _ in range(12):
        raw = await asyncio.to_thread(lambda: client.chat.completions.with_raw_response.create(
            model=SIM_MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=1))
        assert raw.headers["x-tmx-backend"] != "sim-2"
    after = backends(stack)
    assert after["sim-2"]["served"] == served_before["sim-2"]
    assert sum(b["served"] for b in after.values()) - sum(served_before.values()) == 12
    await sub.unsubscribe()
    await bus.close()


def test_plan_rpc_returns_ranked_feasible_plans(stack):
    with grpc.insecure_channel(stack.urls["planner"]) as channel:
        reply = planner_pb2_grpc.PlannerServiceStub(channel).Plan(planner_pb2.PlanRequest(
            model="Llama-3.1-8B-Instruct", workload=planner_pb2.Workload(isl=1024, osl=256, concurrency=64),
            sla=planner_pb2.Sla(ttft_p95_ms=1000), limit=5), timeout=10)
    assert len(reply.plans) == 5
    assert all(p.prediction.fits and p.prediction.ttft_p95_ms <= 1000 for p in reply.plans)
    assert [p.score for p in reply.plans] == sorted((p.score for p in reply.plans), reverse=True)


def test_forge_job_ends_with_a_kernel_or_a_recorded_reason(stack):
    with grpc.insecure_channel(stack.urls["registry"]) as channel:
        forge = forge_pb2_grpc.ForgeServiceStub(channel)
        job = forge.SubmitJob(forge_pb2.SubmitJobRequest(op="rmsnorm", dtype="float32", target="cpu",
                                                         max_candidates=2, shapes=[events_pb2.Shape(dims=[8, 64])]))
        updates = list(forge.WatchJob(forge_pb2.WatchJobRequest(id=job.id), timeout=240))
        final = updates[-1]
        assert events_pb2.JOB_STATE_RUNNING in {u.state for u in updates}
        # Triton templates on the cpu target: verified under the interpreter, never timed or promoted there
        assert final.state == events_pb2.JOB_STATE_NOT_PROMOTED, final.reason
        assert "2 candidate(s) verified correct but none was benchmarked" in final.reason


def test_a_forge_job_stops_when_its_time_budget_is_spent(stack):
    with grpc.insecure_channel(stack.urls["registry"]) as channel:
        forge = forge_pb2_grpc.ForgeServiceStub(channel)
        job = forge.SubmitJob(forge_pb2.SubmitJobRequest(op="rmsnorm", dtype="float32", target="cpu",
                                                         max_candidates=8, time_budget_s=3,
                                                         shapes=[events_pb2.Shape(dims=[8, 64])]))
        final = list(forge.WatchJob(forge_pb2.WatchJobRequest(id=job.id), timeout=240))[-1]
    # each template candidate takes ~2.5 s under the interpreter: 8 cannot fit in 3 s
    assert final.state == events_pb2.JOB_STATE_NOT_PROMOTED, final.reason
    assert re.search(r"time budget of 3s spent after [0-3] candidate\(s\)", final.reason), final.reason


CUSTOM_REFERENCE = (Path(__file__).resolve().parents[2] / "services" / "forge-worker" / "tests" / "references" /
                    "quick_gelu.py").read_text()


def test_a_custom_op_job_is_verified_against_its_own_sandboxed_reference(stack, tmp_path):
    reference, candidate = tmp_path / "reference.py", tmp_path / "candidate.py"
    reference.write_text(CUSTOM_REFERENCE)
    # correct, and clearly slower than the eager baseline (it computes in float64, as the reference does: the
    # verifier read 0.37-0.40x here; float64 at least halves the throughput of this elementwise op). An eager-equal candidate made this test a coin with a small bias: timing cannot tell
    # identical code apart, and once (a CI run) it read >= 1.10x in all 7 pairs; how often an identical candidate
    # is promoted is measured in bench/verifier_aa.py, not asserted here
    candidate.write_text("import torch\n\n\ndef launch(x):\n    d = x.double()\n"
                         "    return (d * torch.sigmoid(1.702 * d)).to(x.dtype)\n")
    submit = subprocess.run([sys.executable, "-m", "tmx_cli.main", "forge", "submit", "--op", "quick_gelu",
                             "--shape", "256x1024", "--candidate", str(candidate), "--reference", str(reference),
                             "--wait", "--registry-addr", stack.urls["registry"]],
                            capture_output=True, text=True, timeout=240)
    assert submit.returncode == 0, submit.stderr
    final = json.loads(submit.stdout.splitlines()[-1])
    assert final["state"] == "not_promoted", final  # verified, then timed against the reference's own baseline
    speedup = re.search(r"geometric-mean speedup ([0-9.]+)x is below 1.1x", final["reason"])
    assert speedup and float(speedup.group(1)) < 0.6, final


def test_tmx_commands_against_the_stack(stack, tmp_path):
    status = subprocess.run([sys.executable, "-m", "tmx_cli.main", "status", "--health-addr", stack.urls["health"]],
                            capture_output=True, text=True, timeout=30)
    assert status.returncode == 0 and "sim-1" in status.stdout and "tmx-sim-llama" in status.stdout
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("\n".join([
        json.dumps({"model": "Llama-3.1-8B-Instruct", "gpu": "H100", "gpu_count": 4, "tp": 1, "engine": "vllm",
                    "precision": "bf16", "isl": 1024, "osl": 256, "concurrency": 128}),
        "not json",
        json.dumps({"model": "Llama-3.1-8B", "gpu": "H100", "isl": 100, "osl": 10, "concurrency": None}),
        json.dumps({"model": "unknown-model", "gpu": "H100", "isl": 100, "osl": 10, "concurrency": 1}),
    ]))
    out = subprocess.run([sys.executable, "-m", "tmx_cli.main", "plan", "estimate", "--input", str(inputs),
                          "--planner-addr", stack.urls["planner"]], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 4
    assert lines[0]["error"] is None and lines[0]["fits"] and lines[0]["output_tok_s_total"] > 0
    assert lines[1]["error"].startswith("line 2")
    assert lines[2]["error"] is None
    assert lines[3]["error"].startswith("model:")
    compare = subprocess.run([sys.executable, "-m", "tmx_cli.main", "plan", "compare", "--model", "Llama-3.1-8B",
                              "--model", "Qwen3-8B", "--planner-addr", stack.urls["planner"]],
                             capture_output=True, text=True, timeout=30)
    assert compare.returncode == 0, compare.stderr
    assert "Llama-3.1-8B (chat)" in compare.stdout and "Qwen3-8B (chat)" in compare.stdout
    recommend = subprocess.run([sys.executable, "-m", "tmx_cli.main", "plan", "recommend", "--model", "gpt-oss-20b",
                                "--profile", "batch", "--weight", "cost=2", "--json", "--limit", "2",
                                "--planner-addr", stack.urls["planner"]], capture_output=True, text=True, timeout=30)
    assert recommend.returncode == 0, recommend.stderr
    reply = json.loads(recommend.stdout)
    assert reply["profile"] == "batch" and len(reply["plans"]) == 2 and reply["plans"][0]["launch_command"]
    candidate = tmp_path / "mine.py"
    candidate.write_text("def launch(x, w, eps=1e-6):\n    return x\n")
    submit = subprocess.run([sys.executable, "-m", "tmx_cli.main", "forge", "submit", "--op", "rmsnorm", "--shape",
                             "8x64", "--candidate", str(candidate), "--registry-addr", stack.urls["registry"]],
                            capture_output=True, text=True, timeout=30)
    assert submit.returncode == 0, submit.stderr
    assert json.loads(submit.stdout)["generator"] == "file"
    candidate.write_text("def launch(x:\n")
    bad = subprocess.run([sys.executable, "-m", "tmx_cli.main", "forge", "submit", "--op", "rmsnorm", "--shape", "8x64",
                          "--candidate", str(candidate), "--registry-addr", stack.urls["registry"]],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "not valid Python" in bad.stderr


def test_the_forge_worker_is_listed_and_an_op_it_lacks_is_refused_at_submission(stack, tmx_wait):
    """The running worker announces its ops: `tmx forge workers` lists it, and a typo'd op is refused by the
    registry at once (it was queued, then failed by the worker as "unknown op")."""
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tmx_cli.main", "forge", *args, "--registry-addr",
                               stack.urls["registry"]], capture_output=True, text=True, timeout=30,
                              env={**os.environ, "COLUMNS": "400"})

    with grpc.insecure_channel(stack.urls["registry"]) as channel:  # the worker announces once torch is loaded
        forge = forge_pb2_grpc.ForgeServiceStub(channel)
        tmx_wait(lambda: forge.ListWorkers(forge_pb2.ListWorkersRequest(target="cpu")).workers, 120,
                 what="the forge worker's record")
    listed = cli("workers")
    typo = cli("submit", "--op", "rmsnrom", "--shape", "8x64")
    assert listed.returncode == 0 and "forge-0" in listed.stdout and "rmsnorm" in listed.stdout
    assert typo.returncode == 1 and "INVALID_ARGUMENT: op: unknown op 'rmsnrom'; the cpu workers have" in typo.stderr


def test_verified_kernels_export_lock_and_integrity_checked_load(stack, tmp_path):
    from tmx_artifacts import IntegrityError, LockError, from_registry

    source = "def launch(x, scale=1):\n    return [v * scale for v in x]\n"
    with grpc.insecure_channel(stack.urls["registry"]) as channel:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        published = [registry.PublishKernel(registry_pb2.PublishKernelRequest(
            op="toy_scale", dtype="float32", hardware="cuda-sm90", source=source, config_json=json.dumps(config),
            speedup=speedup, evidence_json=json.dumps({"bench": "test"}))) for config, speedup in
            (({"scale": 2}, 1.2), ({"scale": 3}, 1.5))]
        resolved = registry.ResolveKernel(registry_pb2.ResolveKernelRequest(op="toy_scale", dtype="float32",
                                                                            hardware="cuda-sm90"))
    assert resolved.id == published[1].id  # the faster one
    tmx = [sys.executable, "-m", "tmx_cli.main", "kernels"]
    addr = ["--registry-addr", stack.urls["registry"]]
    subprocess.run(tmx + ["export", "--out", str(tmp_path), "--hardware", "cuda-sm90"] + addr, check=True,
                   capture_output=True, timeout=60)
    exported = json.loads((tmp_path / "verified_kernels.json").read_text())
    assert {k["id"] for k in exported["kernels"]} == {k.id for k in published}
    lock = json.loads((tmp_path / "tmx-kernels.lock").read_text())
    assert lock["kernels"]["toy_scale/float32/cuda-sm90"]["content_hash"] == published[1].content_hash
    out = subprocess.run(tmx + ["resolve", "--op", "toy_scale", "--dtype", "float32", "--hardware", "cuda-sm90",
                                "--lock", str(tmp_path / "tmx-kernels.lock")] + addr,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["config"] == {"scale": 3}
    # an engine loads the pinned kernel only; a record whose code changed, or another pin, is refused
    assert from_registry(resolved, lock)([1, 2]) == [3, 6]
    resolved.source = source.replace("v * scale", "v * scale + 1")
    with pytest.raises(IntegrityError):
        from_registry(resolved, lock)
    lock["kernels"]["toy_scale/float32/cuda-sm90"]["content_hash"] = published[0].content_hash
    with pytest.raises(LockError, match="pins"):
        from_registry(resolved, lock)
    # an sm100 device is served by the sm90 kernels; revoking the default hands over to the other one
    resolve = tmx + ["resolve", "--op", "toy_scale", "--dtype", "float32", "--hardware", "cuda-sm100",
                     "--shape", "8x64"] + addr
    assert json.loads(subprocess.run(resolve, capture_output=True, text=True, timeout=60).stdout)["id"] == published[1].id
    revoke = subprocess.run(tmx + ["revoke", published[1].id, "--reason", "wrong on odd rows", "--actor", "e2e"] + addr,
                            capture_output=True, text=True, timeout=60)
    assert revoke.returncode == 0 and json.loads(revoke.stdout)["status"] == "revoked", revoke.stderr
    assert json.loads(subprocess.run(resolve, capture_output=True, text=True, timeout=60).stdout)["id"] == published[0].id
    history = subprocess.run(tmx + ["history", "--op", "toy_scale", "--json"] + addr, capture_output=True, text=True,
                             timeout=60)
    log = [json.loads(line) for line in history.stdout.splitlines()]
    assert [(d["kernel_id"], d["decision"]) for d in log[:2]] == [(published[0].id, "promoted"),
                                                                 (published[1].id, "revoked")]
    assert "reinstated" in log[0]["reason"] and log[1]["actor"] == "e2e"
    again = subprocess.run(tmx + ["revoke", published[1].id, "--reason", "twice"] + addr, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 1 and "FAILED_PRECONDITION" in again.stderr and "already revoked" in again.stderr


async def test_a_forge_worker_killed_mid_job_leaves_it_to_be_redelivered_and_finished_once(stack):
    bus = await EventBus.connect(stack.urls["nats"], name="e2e-forge")
    events: list = []

    async def on_msg(msg):
        events.append(decode(msg.data, msg.headers))

    sub = await bus.nc.subscribe(subjects.ALL_FORGE_PROGRESS, cb=on_msg)
    await bus.nc.flush()  # the server knows the subscription before the job's first event exists
    try:
        with grpc.insecure_channel(stack.urls["registry"]) as channel:
            forge = forge_pb2_grpc.ForgeServiceStub(channel)
            job = forge.SubmitJob(forge_pb2.SubmitJobRequest(op="rmsnorm", dtype="float32", target="cpu",
                                                             max_candidates=3, shapes=[events_pb2.Shape(dims=[8, 64])]))

            def steps() -> list[str]:
                return [e.step for e in events if e.job_id == job.id]

            deadline = time.monotonic() + 120
            while "candidate 1" not in steps():  # mid-job: one candidate verified, more to go
                assert time.monotonic() < deadline, steps()
                await asyncio.sleep(0.05)
            stack.kill_child("forge-worker")
            assert "finished" not in steps()
            stack.restart_child("forge-worker")
            # JetStream redelivers once the dead worker's ack deadline (60 s) passes without a heartbeat
            final = await asyncio.to_thread(
                lambda: list(forge.WatchJob(forge_pb2.WatchJobRequest(id=job.id), timeout=240))[-1])
        assert final.state == events_pb2.JOB_STATE_NOT_PROMOTED, final.reason
        assert "3 candidate(s) verified correct" in final.reason  # the whole job, run again from the start
        deadline = time.monotonic() + 10
        while steps().count("finished") < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert steps().count("finished") == 1 and steps().count("started") == 2
    finally:
        await sub.unsubscribe()
        await bus.close()
