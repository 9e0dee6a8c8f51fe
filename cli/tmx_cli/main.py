"""The `tmx` command."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Annotated, Optional

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table

from tensormux.events.v1 import events_pb2
from tensormux.forge.v1 import forge_pb2, forge_pb2_grpc
from tensormux.health.v1 import health_pb2, health_pb2_grpc
from tensormux.planner.v1 import planner_pb2, planner_pb2_grpc
from tensormux.registry.v1 import registry_pb2, registry_pb2_grpc
from tmx_cli.stack import Stack, StackConfig, StackError

app = typer.Typer(help="Tensormux: the control plane for self-hosted LLM inference fleets.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit event stream.", no_args_is_help=True)
plan_app = typer.Typer(help="Deployment plans and estimates.", no_args_is_help=True)
forge_app = typer.Typer(help="Kernel jobs.", no_args_is_help=True)
skills_app = typer.Typer(help="Kernel engineering playbooks.", no_args_is_help=True)
kernels_app = typer.Typer(help="Verified kernels: export, lockfile, integrity-checked resolve.", no_args_is_help=True)
app.add_typer(kernels_app, name="kernels")
app.add_typer(audit_app, name="audit")
app.add_typer(skills_app, name="skills")
app.add_typer(plan_app, name="plan")
app.add_typer(forge_app, name="forge")
console = Console()
errors = Console(stderr=True, soft_wrap=True)  # to stderr, so stdout stays data; never wrapped mid-message

HEALTH = typer.Option("127.0.0.1:50051", "--health-addr", envvar="TMX_HEALTH_ADDR", help="health service address")
PLANNER = typer.Option("127.0.0.1:50052", "--planner-addr", envvar="TMX_PLANNER_ADDR", help="planner address")
REGISTRY = typer.Option("127.0.0.1:50053", "--registry-addr", envvar="TMX_REGISTRY_ADDR", help="registry address")
U32 = 2**32 - 1  # the largest value of the uint32 fields these counts travel in


def _positive(value: float | None) -> float | None:
    """An option that must be a positive number, when given (NaN is not)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be > 0, got {value}")
    return value
NATS = typer.Option("nats://127.0.0.1:4222", "--nats-url", envvar="TMX_NATS_URL", help="NATS server URL")


def _fail(message: str) -> None:
    errors.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _rpc(call, request, timeout: float = 10.0):
    try:
        return call(request, timeout=timeout)
    except grpc.RpcError as exc:
        hint = "; is the stack up? (`tmx up` starts it)" if exc.code() == grpc.StatusCode.UNAVAILABLE else ""
        _fail(f"{exc.code().name}: {exc.details()}{hint}")


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(help="where logs, NATS data and the SQLite registry live")] = Path(".tmx"),
    nats_url: Annotated[str, typer.Option(help="use this NATS instead of starting one")] = "",
    database_url: Annotated[str, typer.Option(help="use this database instead of SQLite")] = "",
    fleet: Annotated[Optional[Path], typer.Option(help="fleet file; default: generated engine-sim replicas")] = None,
    engine_sims: Annotated[int, typer.Option(help="engine-sim replicas to start")] = 4,
    gateway_port: int = 8080,
) -> None:
    """Start the whole stack on this machine; Ctrl-C stops it."""
    started = time.perf_counter()
    stack = Stack(StackConfig(data_dir=data_dir.resolve(), nats_url=nats_url, database_url=database_url,
                              fleet_file=fleet.resolve() if fleet else None, engine_sims=engine_sims,
                              gateway_port=gateway_port))
    console.print("starting Tensormux ...")
    try:
        stack.start()
    except StackError as exc:
        _fail(str(exc))
    elapsed = time.perf_counter() - started
    table = Table(title=f"Tensormux is up ({elapsed:.1f}s)", show_header=True)
    table.add_column("service")
    table.add_column("address")
    gw = stack.urls["gateway"]
    rows = [("gateway (OpenAI API)", f"{gw}/v1"), ("live view", f"{gw}/ui"), ("metrics", f"{gw}/metrics"),
            ("models", f"{gw}/v1/models"),
            ("health gRPC", stack.urls["health"]), ("planner gRPC", stack.urls["planner"]),
            ("registry gRPC", stack.urls["registry"]), ("NATS", stack.urls["nats"])]
    rows += [(f"engine-sim {i}", f"http://127.0.0.1:{p}") for i, p in enumerate(stack.sim_ports, 1)]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"logs in {stack.logs}; press Ctrl-C to stop")
    run_until_stopped(stack)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_until_stopped(stack: Stack, poll_s: float = 0.5) -> None:
    """Keep the stack up until Ctrl-C, SIGTERM or SIGHUP (the terminal closed), or until a service exits; then
    stop every service. The children lead process groups of their own, so none of these signals reaches them
    from the terminal: without a handler, a SIGHUP would end `tmx up` and leave them all running."""
    stop = {"now": False}

    def _stop(*_):
        stop["now"] = True

    previous = {sig: signal.signal(sig, _stop) for sig in STOP_SIGNALS}
    try:
        while not stop["now"]:
            for child in stack.children:
                if child.proc.poll() is not None:
                    console.print(f"[red]{child.name} exited ({child.proc.returncode}); see {child.log_path}[/red]")
                    stop["now"] = True
            time.sleep(poll_s)
    finally:
        console.print("stopping ...")
        stack.stop()
        console.print("stopped")
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def status(health_addr: str = HEALTH) -> None:
    """Backends and the models they serve, as the health service sees them."""
    with grpc.insecure_channel(health_addr) as channel:
        stub = health_pb2_grpc.HealthServiceStub(channel)
        backends = _rpc(stub.ListBackends, health_pb2.ListBackendsRequest()).backends
        models = _rpc(stub.ListModels, health_pb2.ListModelsRequest()).models
    table = Table(title="backends")
    for col in ("id", "url", "state", "models", "last probe ms", "last error"):
        table.add_column(col)
    for b in backends:
        state = events_pb2.BackendState.Name(b.state).removeprefix("BACKEND_STATE_").lower()
        table.add_row(b.id, b.url, state, ", ".join(b.models), f"{b.last_probe_latency_ms:.1f}", b.last_error)
    console.print(table)
    mtable = Table(title="models")
    for col in ("model", "backends", "healthy"):
        mtable.add_column(col)
    for m in models:
        mtable.add_row(m.id, ", ".join(m.backend_ids), str(m.healthy_backends))
    console.print(mtable)


@audit_app.command("tail")
def audit_tail(
    nats_url: str = NATS,
    tenant: Annotated[str, typer.Option(help="only this tenant")] = "",
    count: Annotated[int, typer.Option(help="stop after this many events (0 = follow)")] = 0,
    from_start: Annotated[bool, typer.Option(help="replay the stream from its start")] = False,
) -> None:
    """Print audit events as JSON lines."""
    asyncio.run(_audit_tail(nats_url, tenant, count, from_start))


async def _audit_tail(nats_url: str, tenant: str, count: int, from_start: bool) -> None:
    from nats.js.api import ConsumerConfig, DeliverPolicy

    from tmx_eventbus import EventBus, decode_all, subjects
    from tmx_eventbus.streams import TMX_AUDIT

    async def quiet(exc: Exception) -> None:  # nats-py logs each failed try with its traceback by default
        pass

    try:  # a command fails fast: a service's connection would retry an unreachable server forever
        bus = await EventBus.connect(nats_url, name="tmx-audit-tail", allow_reconnect=False,
                                     max_reconnect_attempts=1, error_cb=quiet)
    except Exception as exc:
        _fail(f"cannot reach NATS at {nats_url} ({exc or type(exc).__name__}); is the stack up? `tmx up` prints "
              "the NATS URL it uses")
    queue: asyncio.Queue = asyncio.Queue()

    async def on_msg(msg) -> None:
        queue.put_nowait(msg)

    subject = subjects.audit(tenant) if tenant else subjects.ALL_AUDIT
    policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
    sub = await bus.js.subscribe(subject, stream=TMX_AUDIT.name, cb=on_msg, ordered_consumer=True,
                                 config=ConsumerConfig(deliver_policy=policy))
    seen = 0
    try:
        while not count or seen < count:
            msg = await queue.get()
            for event in decode_all(msg.data, msg.headers):  # the gateway packs a publish cycle's events
                if count and seen >= count:
                    break
                print(json.dumps(MessageToDict(event, preserving_proto_field_name=True)), flush=True)
                seen += 1
    finally:
        await sub.unsubscribe()
        await bus.close()


def _workload(isl: int, osl: int, concurrency: Optional[int], request_rate: Optional[float]) -> planner_pb2.Workload:
    w = planner_pb2.Workload(isl=isl, osl=osl)
    if concurrency is not None:
        w.concurrency = concurrency
    if request_rate is not None:
        w.request_rate = request_rate
    return w


@plan_app.command("recommend")
def plan_recommend(
    model: Annotated[str, typer.Option(help="model name, e.g. Llama-3.1-8B-Instruct")],
    isl: Annotated[int, typer.Option(help="input tokens per request", min=1, max=U32)] = 1024,
    osl: Annotated[int, typer.Option(help="output tokens per request", min=1, max=U32)] = 256,
    concurrency: Annotated[Optional[int], typer.Option(help="concurrent requests", min=1, max=U32)] = None,
    request_rate: Annotated[Optional[float], typer.Option(help="requests per second", callback=_positive)] = None,
    ttft_p95_ms: Annotated[Optional[float], typer.Option(help="SLA: TTFT p95", callback=_positive)] = None,
    tpot_ms: Annotated[Optional[float], typer.Option(help="SLA: time per output token", callback=_positive)] = None,
    budget_per_hour: Annotated[Optional[float], typer.Option(help="budget in $ per hour", callback=_positive)] = None,
    profile: Annotated[str, typer.Option(help="chat, rag, batch or agentic")] = "chat",
    weight: Annotated[list[str], typer.Option(help="dimension=weight, e.g. cost=2 (repeatable)")] = [],
    hf_config: Annotated[Optional[Path], typer.Option(help="a Hugging Face config.json for an uncatalogued model")]
    = None,
    limit: Annotated[int, typer.Option(min=1, max=U32)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    planner_addr: str = PLANNER,
) -> None:
    """Ranked deployment plans for a model and workload (`*` marks the cost-vs-latency Pareto frontier)."""
    request = _plan_request(model, isl, osl, concurrency, request_rate, profile, weight, hf_config, limit)
    if ttft_p95_ms is not None:
        request.sla.ttft_p95_ms = ttft_p95_ms
    if tpot_ms is not None:
        request.sla.tpot_ms = tpot_ms
    if budget_per_hour is not None:
        request.budget_per_hour = budget_per_hour
    with grpc.insecure_channel(planner_addr) as channel:
        reply = _rpc(planner_pb2_grpc.PlannerServiceStub(channel).Plan, request)
    if as_json:
        print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True), indent=2))
        return
    _print_plans(reply)
    if reply.plans:
        console.print(f"best plan: [bold]{reply.plans[0].launch_command}[/bold]")


def _plan_request(model, isl, osl, concurrency, request_rate, profile, weights, hf_config, limit):
    parsed = {}
    for item in weights:
        name, _, value = item.partition("=")
        try:
            parsed[name.strip()] = float(value)
        except ValueError:
            raise typer.BadParameter(f"weight {item!r} must look like cost=2") from None
    return planner_pb2.PlanRequest(model=model, workload=_workload(isl, osl, concurrency, request_rate), limit=limit,
                                   profile=profile, weights=parsed,
                                   hf_config_json=hf_config.read_text() if hf_config else "")


def _print_plans(reply) -> None:
    table = Table(title=f"{reply.resolved_model} ({reply.profile}): {len(reply.plans)} plans "
                        f"({reply.candidates_considered} considered, {reply.candidates_dropped} dropped)")
    for col in ("#", "gpu", "n", "tp", "engine", "precision", "tok/s", "TTFT p95 ms", "TPOT ms", "$/h", "$/M tok",
                "score"):
        table.add_column(col)
    for i, p in enumerate(reply.plans, 1):
        pr = p.prediction
        table.add_row(f"{i}{'*' if p.pareto else ''}", p.gpu, str(p.gpu_count), str(p.tp), p.engine, p.precision,
                      f"{pr.output_tok_s_total:.0f}", f"{pr.ttft_p95_ms:.0f}", f"{pr.tpot_ms:.1f}",
                      f"{p.cost_per_hour:.2f}", f"{p.cost_per_million_output_tokens:.2f}", f"{p.score:.3f}")
    console.print(table)
    if reply.dropped_by_reason:
        console.print("dropped: " + ", ".join(f"{n} {why}" for why, n in sorted(reply.dropped_by_reason.items(),
                                                                                 key=lambda item: -item[1])))
    if not reply.plans and reply.best_fitting:
        best = reply.best_fitting
        units = {"ttft_p95_ms": ("lowest TTFT p95", "{:.0f} ms"), "tpot_ms": ("lowest TPOT", "{:.1f} ms"),
                 "output_tok_s": ("highest throughput", "{:.0f} tok/s"), "cost_per_hour": ("cheapest", "${:.2f}/h")}
        console.print("no plan meets every constraint; of the deployments that fit in memory: " + ", ".join(
            f"{label} {form.format(best[key])}" for key, (label, form) in units.items() if key in best))


@plan_app.command("fleet")
def plan_fleet(planner_addr: str = PLANNER) -> None:
    """Predicted vs observed TTFT and TPOT for backends whose hardware the fleet file declares."""
    with grpc.insecure_channel(planner_addr) as channel:
        reply = _rpc(planner_pb2_grpc.PlannerServiceStub(channel).FleetReport, planner_pb2.FleetReportRequest())
    table = Table(title="predicted vs observed (gateway RequestOutcome events)")
    for col in ("backend", "model", "deployment", "requests", "isl/osl", "concurrency", "TTFT p50 obs/pred ms",
                "TPOT obs/pred ms", "note"):
        table.add_column(col, overflow="fold")
    for b in reply.backends:
        table.add_row(b.backend_id, b.model, b.deployment, str(b.requests),
                      f"{b.mean_prompt_tokens:.0f}/{b.mean_completion_tokens:.0f}", f"{b.observed_concurrency:.1f}",
                      f"{b.observed_ttft_p50_ms:.0f} / {b.predicted_ttft_p50_ms:.0f} ({b.ttft_error:+.0%})",
                      f"{b.observed_tpot_ms:.1f} / {b.predicted_tpot_ms:.1f} ({b.tpot_error:+.0%})", b.note)
    console.print(table)
    if not reply.backends:
        console.print("no backend declares its hardware: add `hardware: H100` (and gpu_count, tp, precision) "
                      "to a backend in the fleet file")


@plan_app.command("compare")
def plan_compare(
    model: Annotated[list[str], typer.Option(help="a model to compare (repeat)")],
    isl: Annotated[int, typer.Option(min=1, max=U32)] = 1024,
    osl: Annotated[int, typer.Option(min=1, max=U32)] = 256,
    concurrency: Annotated[Optional[int], typer.Option(help="concurrent requests", min=1, max=U32)] = 32,
    profile: str = "chat",
    limit: Annotated[int, typer.Option(min=1, max=U32)] = 3,
    planner_addr: str = PLANNER,
) -> None:
    """The best plans for several models side by side."""
    requests = [_plan_request(m, isl, osl, concurrency, None, profile, [], None, limit) for m in model]
    with grpc.insecure_channel(planner_addr) as channel:
        reply = _rpc(planner_pb2_grpc.PlannerServiceStub(channel).Compare,
                     planner_pb2.CompareRequest(requests=requests))
    for response in reply.responses:
        _print_plans(response)


@plan_app.command("estimate")
def plan_estimate(
    input: Annotated[Path, typer.Option("--input", help="JSON lines, one deployment + workload per line")],
    planner_addr: str = PLANNER,
) -> None:
    """Predict throughput, TTFT and TPOT for each input line; writes one JSON line per input."""
    inputs, errors = [], {}
    for n, line in enumerate(input.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            item = planner_pb2.EstimateInput(
                model=str(raw["model"]), gpu=str(raw["gpu"]), gpu_count=int(raw.get("gpu_count") or 1),
                tp=int(raw.get("tp") or 1), engine=str(raw.get("engine") or "vllm").lower(),
                precision=str(raw.get("precision") or "bf16").lower(), isl=int(raw["isl"]), osl=int(raw["osl"]))
            if raw.get("concurrency") is not None:
                item.concurrency = int(raw["concurrency"])
            if raw.get("request_rate") is not None:
                item.request_rate = float(raw["request_rate"])
        except (ValueError, KeyError, TypeError) as exc:
            errors[len(inputs)] = f"line {n + 1}: {type(exc).__name__}: {exc}"
            item = None
        inputs.append(item)
    valid = [i for i in inputs if i is not None]
    with grpc.insecure_channel(planner_addr) as channel:
        outputs = iter(_rpc(planner_pb2_grpc.PlannerServiceStub(channel).Estimate,
                            planner_pb2.EstimateRequest(inputs=valid)).outputs) if valid else iter(())
    failed = dict.fromkeys(("output_tok_s_total", "ttft_p50_ms", "ttft_p95_ms", "tpot_ms", "fits"))
    for index, item in enumerate(inputs):
        if item is None:
            print(json.dumps({**failed, "error": errors[index]}))
            continue
        o = next(outputs)
        if o.error:
            print(json.dumps({**failed, "error": o.error}))
        else:
            print(json.dumps({"output_tok_s_total": o.output_tok_s_total, "ttft_p50_ms": o.ttft_p50_ms,
                              "ttft_p95_ms": o.ttft_p95_ms, "tpot_ms": o.tpot_ms, "fits": o.fits, "error": None}))


def _job_row(job: forge_pb2.Job) -> dict:
    return {"id": job.id, "op": job.op, "dtype": job.dtype, "target": job.target, "generator": job.generator,
            "shapes": ["x".join(map(str, s.dims)) for s in job.shapes],
            "state": events_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower(), "reason": job.reason,
            "kernel_id": job.kernel_id, "best_speedup": round(job.best_speedup, 4)}


def _shape(text: str) -> events_pb2.Shape:
    try:
        return events_pb2.Shape(dims=[int(d) for d in text.lower().split("x")])
    except ValueError:
        raise typer.BadParameter(f"shape {text!r} must look like 4096x8192") from None


# options the forge commands share
OpName = Annotated[str, typer.Option(help="op name, e.g. rmsnorm")]
Shapes = Annotated[list[str], typer.Option(help="shape like 4096x8192; repeat for several")]
Target = Annotated[str, typer.Option(help="cpu, cuda-sm90, ...")]


@forge_app.command("submit")
def forge_submit(
    op: OpName,
    shape: Shapes,
    dtype: str = "float32",
    target: Target = "cpu",
    generator: Annotated[str, typer.Option(help="template, inductor (torch.compile variants) or agent (LLM); "
                                                "--candidate implies file")] = "",
    candidate: Annotated[Optional[Path], typer.Option(help="your own candidate: a Python file defining "
                                                           "launch(*inputs)", exists=True, dir_okay=False)] = None,
    reference: Annotated[Optional[Path], typer.Option(
        help="a custom op's reference: a Python file defining make_inputs(shape, dtype, seed, device), "
             "reference(*inputs) and baseline(*inputs) (see tmx_kernels.custom); needs --candidate",
        exists=True, dir_okay=False)] = None,
    max_candidates: Annotated[int, typer.Option(min=1, max=U32)] = 4,
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = False,
    registry_addr: str = REGISTRY,
) -> None:
    """Submit a kernel job."""
    if candidate is not None and generator not in ("", "file"):
        _fail("--candidate submits a file job; leave --generator out")
    request = forge_pb2.SubmitJobRequest(op=op, dtype=dtype, target=target, max_candidates=max_candidates,
                                         generator="file" if candidate is not None else generator,
                                         candidate_source=candidate.read_text() if candidate is not None else "",
                                         reference_source=reference.read_text() if reference is not None else "",
                                         shapes=[_shape(s) for s in shape])
    with grpc.insecure_channel(registry_addr) as channel:
        stub = forge_pb2_grpc.ForgeServiceStub(channel)
        job = _rpc(stub.SubmitJob, request)
        print(json.dumps(_job_row(job)))
        if wait:
            try:
                for update in stub.WatchJob(forge_pb2.WatchJobRequest(id=job.id), timeout=3600):
                    print(json.dumps(_job_row(update)), flush=True)
            except grpc.RpcError as exc:
                _fail(f"{exc.code().name}: {exc.details()}")


@forge_app.command("verify")
def forge_verify(
    op: OpName,
    candidate: Annotated[Path, typer.Option(help="a Python file defining launch(*inputs, **config)",
                                            exists=True, dir_okay=False)],
    shape: Shapes,
    dtype: str = "float32",
    target: Target = "cpu",
    config: Annotated[str, typer.Option(help="JSON object of keyword arguments for launch")] = "{}",
    repeats: int = 7,
    compile_baseline: Annotated[bool, typer.Option(help="also time torch.compile as a baseline")] = True,
    timeout: Annotated[float, typer.Option(help="wall limit in seconds")] = 600.0,
) -> None:
    """Run the forge's verifier on one candidate file and print its JSON verdict (exit 1 when rejected)."""
    try:
        from tmx_forge.domain.candidates import Candidate
        from tmx_forge.domain.promotion import decide
        from tmx_forge.verifier import Limits, Verifier
    except ImportError:
        _fail("the verifier ships with the forge worker: pip install -e services/forge-worker")
    try:
        kwargs = json.loads(config)
        if not isinstance(kwargs, dict):
            raise ValueError
    except ValueError:
        raise typer.BadParameter("--config must be a JSON object") from None
    dims = [list(_shape(s).dims) for s in shape]
    try:
        verifier = Verifier(op, dtype, target, dims, Limits(wall_s=timeout, repeats=repeats,
                                                            compile_baseline=compile_baseline))
    except (KeyError, ValueError) as exc:
        _fail(str(exc).strip("'\""))
    verdict = verifier.verify(Candidate(candidate.read_text(), kwargs, label=candidate.name))
    result = verdict.to_dict()
    if verdict.benchmarked:
        decision = decide(verdict.speedups, wins=verdict.wins)
        result["promotion"] = {"promote": decision.promote, "geomean_speedup": decision.geomean,
                               "reason": decision.reason}
    print(json.dumps(result, indent=2))
    raise typer.Exit(0 if verdict.ok else 1)


@forge_app.command("jobs")
def forge_jobs(limit: Annotated[int, typer.Option(min=1, max=U32)] = 20, registry_addr: str = REGISTRY) -> None:
    """Recent kernel jobs."""
    with grpc.insecure_channel(registry_addr) as channel:
        jobs = _rpc(forge_pb2_grpc.ForgeServiceStub(channel).ListJobs, forge_pb2.ListJobsRequest(limit=limit)).jobs
    table = Table(title="kernel jobs")
    for col in ("id", "op", "dtype", "target", "shapes", "state", "speedup", "reason"):
        table.add_column(col, overflow="fold")
    for job in jobs:
        row = _job_row(job)
        table.add_row(row["id"][:12], row["op"], row["dtype"], row["target"], " ".join(row["shapes"]), row["state"],
                      f"{row['best_speedup']:.3g}x", row["reason"][:120])
    console.print(table)


@forge_app.command("workers")
def forge_workers(target: Annotated[str, typer.Option(help="only this target's workers")] = "",
                  registry_addr: str = REGISTRY) -> None:
    """The forge workers running now: their target, generators and the ops they can verify."""
    with grpc.insecure_channel(registry_addr) as channel:
        workers = _rpc(forge_pb2_grpc.ForgeServiceStub(channel).ListWorkers,
                       forge_pb2.ListWorkersRequest(target=target)).workers
    table = Table(title="forge workers")
    for col in ("worker", "target", "generators", "torch", "triton", "up", "ops"):
        table.add_column(col, overflow="fold")
    now_ms = time.time() * 1000
    for w in workers:
        table.add_row(w.worker_id, w.target, " ".join(w.generators), w.torch, w.triton,
                      f"{(now_ms - w.started_at_unix_ms) / 60_000:.0f} min", " ".join(w.ops))
    console.print(table)
    if not workers:
        console.print(f"no forge worker{' of target ' + target if target else ''} is running; jobs wait in the "
                      "queue until one starts (`tmx up` starts a cpu worker)")


def _kernel_record(k) -> dict:
    return {"id": k.id, "op": k.op, "dtype": k.dtype, "hardware": k.hardware, "content_hash": k.content_hash,
            "config": json.loads(k.config_json or "{}"), "speedup": k.speedup, "job_id": k.job_id,
            "created_at_unix_ms": k.created_at_unix_ms, "status": k.status,
            "provenance": MessageToDict(k.provenance, preserving_proto_field_name=True),
            "environment": MessageToDict(k.environment, preserving_proto_field_name=True)}


@kernels_app.command("export")
def kernels_export(
    out: Annotated[Path, typer.Option(help="folder for verified_kernels.json and tmx-kernels.lock")] = Path("."),
    hardware: Annotated[str, typer.Option(help="only this hardware target")] = "",
    registry_addr: str = REGISTRY,
) -> None:
    """Write every verified kernel (verified_kernels.json) and the resolved one per op/dtype/hardware
    pinned by content hash (tmx-kernels.lock)."""
    from tmx_artifacts import export, lock

    with grpc.insecure_channel(registry_addr) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        kernels = _rpc(stub.ListKernels, registry_pb2.ListKernelsRequest(hardware=hardware)).kernels
        keys = sorted({(k.op, k.dtype, k.hardware) for k in kernels})
        resolved = [_rpc(stub.ResolveKernel, registry_pb2.ResolveKernelRequest(op=op, dtype=dtype, hardware=hw))
                    for op, dtype, hw in keys]
    out.mkdir(parents=True, exist_ok=True)
    (out / "verified_kernels.json").write_text(json.dumps(export([_kernel_record(k) for k in kernels]), indent=2))
    (out / "tmx-kernels.lock").write_text(json.dumps(lock([_kernel_record(k) for k in resolved]), indent=2))
    console.print(f"{len(kernels)} verified kernels, {len(resolved)} pinned -> {out}")


@kernels_app.command("resolve")
def kernels_resolve(
    op: Annotated[str, typer.Option()], dtype: Annotated[str, typer.Option()],
    hardware: Annotated[str, typer.Option(help="the device: cpu, cuda-sm90, ...")],
    shape: Annotated[Optional[str], typer.Option(help="the shape it will run at, e.g. 4096x4096")] = None,
    lockfile: Annotated[Optional[Path], typer.Option("--lock", exists=True, dir_okay=False,
                                                     help="require the kernel this lockfile pins")] = None,
    registry_addr: str = REGISTRY,
) -> None:
    """Resolve the best verified kernel for a device (and shape), check its content hash (and the lockfile's
    pin) without running it, and print it as JSON."""
    from tmx_artifacts import IntegrityError, LockError, check

    request = registry_pb2.ResolveKernelRequest(op=op, dtype=dtype, hardware=hardware,
                                                shape=list(_shape(shape).dims) if shape else [])
    with grpc.insecure_channel(registry_addr) as channel:
        kernel = _rpc(registry_pb2_grpc.RegistryServiceStub(channel).ResolveKernel, request)
    try:
        check(kernel, json.loads(lockfile.read_text()) if lockfile else None)
    except (IntegrityError, LockError, ValueError) as exc:
        _fail(str(exc))
    print(json.dumps({**_kernel_record(kernel), "integrity": "content hash verified"}, indent=2))


@kernels_app.command("revoke")
def kernels_revoke(
    kernel_id: Annotated[str, typer.Argument(help="the kernel's id")],
    reason: Annotated[str, typer.Option(help="why it must never be served again")],
    actor: Annotated[str, typer.Option(help="who revokes it")] = "",
    registry_addr: str = REGISTRY,
) -> None:
    """Revoke a kernel: it is never resolved again; if it was the default, the best remaining one takes over."""
    with grpc.insecure_channel(registry_addr) as channel:
        kernel = _rpc(registry_pb2_grpc.RegistryServiceStub(channel).RevokeKernel,
                      registry_pb2.RevokeKernelRequest(id=kernel_id, reason=reason, actor=actor or _user()))
    print(json.dumps(_kernel_record(kernel)))


@kernels_app.command("history")
def kernels_history(
    op: Annotated[str, typer.Option(help="only this op")] = "",
    kernel_id: Annotated[str, typer.Option("--kernel", help="only this kernel")] = "",
    limit: Annotated[int, typer.Option(min=1, max=U32)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
    registry_addr: str = REGISTRY,
) -> None:
    """The promotion decision log, newest first: promoted, superseded, revoked."""
    with grpc.insecure_channel(registry_addr) as channel:
        decisions = _rpc(registry_pb2_grpc.RegistryServiceStub(channel).ListDecisions,
                         registry_pb2.ListDecisionsRequest(op=op, kernel_id=kernel_id, limit=limit)).decisions
    if as_json:
        for d in decisions:
            print(json.dumps(MessageToDict(d, preserving_proto_field_name=True)))
        return
    table = Table(title="kernel decisions")
    for col in ("when", "kernel", "op", "dtype", "hardware", "decision", "reason", "actor"):
        table.add_column(col, overflow="fold")
    for d in decisions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.created_at_unix_ms / 1000))
        table.add_row(when, d.kernel_id[:12], d.op, d.dtype, d.hardware, d.decision, d.reason, d.actor)
    console.print(table)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _skills():
    try:
        from tmx_kernels.skills import Library, SkillError
    except ImportError:
        _fail("the playbooks ship with the kernel library: pip install -e kernels")
    try:
        return Library.load(), SkillError
    except SkillError as exc:
        _fail(str(exc))


@skills_app.command("list")
def skills_list(category: Annotated[Optional[str], typer.Option(help="op, technique or process")] = None) -> None:
    """Every playbook, optionally of one category."""
    library, _ = _skills()
    table = Table(title="playbooks")
    for col in ("name", "category", "applies to", "description"):
        table.add_column(col, overflow="fold")
    for skill in library.list(category):
        table.add_row(skill.name, skill.category, ", ".join(skill.applies_to), skill.description)
    console.print(table)


@skills_app.command("search")
def skills_search(query: str, limit: int = 5) -> None:
    """Playbooks ranked by relevance to QUERY (BM25F over name, tags, ops, description and body)."""
    library, _ = _skills()
    hits = library.search(query, limit)
    if not hits:
        _fail(f"no playbook matches {query!r}")
    for skill, score in hits:
        console.print(f"{score:6.2f}  [bold]{skill.name}[/bold]  {skill.description}", highlight=False)


@skills_app.command("show")
def skills_show(name: str) -> None:
    """One playbook, whole."""
    library, error = _skills()
    try:
        print(library.get(name).text)
    except error as exc:
        _fail(str(exc))


@skills_app.command("bundle")
def skills_bundle(names: list[str], max_chars: Annotated[int, typer.Option(help="size budget")] = 12000) -> None:
    """The named playbooks as one prompt block within a size budget."""
    library, error = _skills()
    try:
        print(library.bundle(names, max_chars))
    except error as exc:
        _fail(str(exc))


if __name__ == "__main__":
    app()
