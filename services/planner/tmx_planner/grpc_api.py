"""PlannerService: proto <-> domain, nothing else."""

from __future__ import annotations

from tensormux.planner.v1 import planner_pb2, planner_pb2_grpc
import json

from tmx_errors import InvalidArgument, TmxError
from tmx_grpcserver import grpc_errors
from tmx_planner.domain.catalogue import find_gpu, find_model, gpus, model_from_hf_config, models
from tmx_planner.domain.fleet_learning import FleetLearner
from tmx_planner.domain.performance import Deployment, Prediction, predict
from tmx_planner.domain.plans import PlanQuery, PlanResult, Sla, plan


def _opt(message, field: str):
    return getattr(message, field) if message.HasField(field) else None


def _prediction(p: Prediction) -> planner_pb2.Prediction:
    m = p.memory
    return planner_pb2.Prediction(
        weights_gib_per_gpu=m.weights_gb, kv_gib_per_gpu=max(m.kv_budget_gb, 0.0), total_gib_per_gpu=m.total_gb,
        max_concurrent_sequences=m.max_sequences, output_tok_s_total=p.output_tok_s_total,
        ttft_p50_ms=p.ttft_p50_ms, ttft_p95_ms=p.ttft_p95_ms, tpot_ms=p.tpot_ms, fits=m.fits,
    )


def _custom_model(r: planner_pb2.PlanRequest):
    if not r.hf_config_json:
        return None
    try:
        config = json.loads(r.hf_config_json)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        raise InvalidArgument("hf_config_json", f"not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InvalidArgument("hf_config_json", "must be a JSON object")
    return model_from_hf_config(r.model or "custom-model", config)


def _query(r: planner_pb2.PlanRequest) -> PlanQuery:
    w, s = r.workload, r.sla
    return PlanQuery(
        model=r.model, isl=w.isl, osl=w.osl, concurrency=_opt(w, "concurrency"), request_rate=_opt(w, "request_rate"),
        sla=Sla(_opt(s, "ttft_p95_ms"), _opt(s, "tpot_ms"), _opt(s, "min_output_tok_s")),
        budget_per_hour=_opt(r, "budget_per_hour"), gpus=tuple(r.gpus), engines=tuple(r.engines),
        precisions=tuple(r.precisions), max_gpus=r.max_gpus or 8, limit=r.limit or 10, profile=r.profile or "chat",
        weights=dict(r.weights), custom_model=_custom_model(r),
    )


def _plan_response(result: PlanResult) -> planner_pb2.PlanResponse:
    return planner_pb2.PlanResponse(
        resolved_model=result.model, candidates_considered=result.considered, candidates_dropped=result.dropped,
        profile=result.profile, weights=result.weights, dropped_by_reason=result.dropped_by_reason,
        best_fitting=result.best_fitting,
        plans=[planner_pb2.DeploymentPlan(
            gpu=k.deployment.gpu.name, gpu_count=k.deployment.gpu_count, tp=k.deployment.tp,
            replicas=k.deployment.replicas, engine=k.deployment.engine, precision=k.deployment.precision,
            prediction=_prediction(k.prediction), cost_per_hour=k.cost_per_hour,
            cost_per_million_output_tokens=k.cost_per_million_output_tokens, score=k.score,
            explanation=k.explanation, pareto=k.pareto, launch_command=k.launch_command,
            kubernetes_manifest=k.kubernetes_manifest,
            dimension_scores={n: v for n, v in k.dimension_scores.items() if not n.startswith("_")},
        ) for k in result.plans],
    )


def estimate_one(i: planner_pb2.EstimateInput) -> planner_pb2.EstimateOutput:
    """One estimate; anything it cannot handle comes back as `error`, never as a failed call."""
    try:
        d = Deployment(find_model(i.model), find_gpu(i.gpu), i.gpu_count or 1, i.tp or 1, i.engine or "vllm",
                       (i.precision or "bf16").lower())
        p = predict(d, i.isl, i.osl, _opt(i, "concurrency"), _opt(i, "request_rate"))
    except TmxError as exc:
        return planner_pb2.EstimateOutput(error=exc.message)
    return planner_pb2.EstimateOutput(
        output_tok_s_total=p.output_tok_s_total, ttft_p50_ms=p.ttft_p50_ms, ttft_p95_ms=p.ttft_p95_ms,
        tpot_ms=p.tpot_ms, fits=p.memory.fits, prediction=_prediction(p),
    )


class PlannerServicer(planner_pb2_grpc.PlannerServiceServicer):
    def __init__(self, learner: FleetLearner | None = None) -> None:
        self.learner = learner

    @grpc_errors
    async def FleetReport(self, request, context):
        reports = self.learner.report() if self.learner else []
        return planner_pb2.FleetReportResponse(backends=[planner_pb2.BackendReport(
            backend_id=r.backend.backend_id, model=r.backend.model, deployment=r.backend.describe(),
            requests=r.requests, mean_prompt_tokens=r.mean_prompt, mean_completion_tokens=r.mean_completion,
            observed_concurrency=r.concurrency, observed_ttft_p50_ms=r.observed_ttft_p50_ms,
            observed_tpot_ms=r.observed_tpot_ms, predicted_ttft_p50_ms=r.predicted_ttft_p50_ms,
            predicted_tpot_ms=r.predicted_tpot_ms, ttft_error=r.ttft_error, tpot_error=r.tpot_error, note=r.note,
        ) for r in reports])

    @grpc_errors
    async def Plan(self, request, context):
        return _plan_response(plan(_query(request)))

    @grpc_errors
    async def Compare(self, request, context):
        return planner_pb2.CompareResponse(responses=[_plan_response(plan(_query(r))) for r in request.requests])

    @grpc_errors
    async def Estimate(self, request, context):
        return planner_pb2.EstimateResponse(outputs=[estimate_one(i) for i in request.inputs])

    @grpc_errors
    async def ListHardware(self, request, context):
        return planner_pb2.ListHardwareResponse(gpus=[
            planner_pb2.Gpu(name=g.name, memory_gib=g.memory_gb, hbm_bandwidth_gbs=g.hbm_gbs,
                            bf16_tflops=g.bf16_tflops, fp8_tflops=g.fp8_tflops, price_per_hour=g.price_per_hour,
                            fp4_tflops=g.fp4_tflops, interconnect_gbs=g.interconnect_gbs, source=g.source)
            for g in gpus().values()
        ])

    @grpc_errors
    async def ListModels(self, request, context):
        return planner_pb2.ListModelsResponse(models=[
            planner_pb2.Model(name=m.name, params_b=m.params_b, layers=m.layers, hidden=m.hidden, heads=m.heads,
                              kv_heads=m.kv_heads, head_dim=m.head_dim, context_length=m.context_length,
                              active_params_b=m.active_b, experts=m.experts, experts_per_token=m.experts_per_token,
                              attention=("mla" if m.mla_kv_lora_rank else "gqa") + ("+sliding" if m.sliding_layers
                                                                                      else ""),
                              source=m.source)
            for m in models().values()
        ])
