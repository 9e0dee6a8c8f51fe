from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Workload(_message.Message):
    __slots__ = ("isl", "osl", "concurrency", "request_rate")
    ISL_FIELD_NUMBER: _ClassVar[int]
    OSL_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_RATE_FIELD_NUMBER: _ClassVar[int]
    isl: int
    osl: int
    concurrency: int
    request_rate: float
    def __init__(self, isl: _Optional[int] = ..., osl: _Optional[int] = ..., concurrency: _Optional[int] = ..., request_rate: _Optional[float] = ...) -> None: ...

class Sla(_message.Message):
    __slots__ = ("ttft_p95_ms", "tpot_ms", "min_output_tok_s")
    TTFT_P95_MS_FIELD_NUMBER: _ClassVar[int]
    TPOT_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_OUTPUT_TOK_S_FIELD_NUMBER: _ClassVar[int]
    ttft_p95_ms: float
    tpot_ms: float
    min_output_tok_s: float
    def __init__(self, ttft_p95_ms: _Optional[float] = ..., tpot_ms: _Optional[float] = ..., min_output_tok_s: _Optional[float] = ...) -> None: ...

class PlanRequest(_message.Message):
    __slots__ = ("model", "workload", "sla", "budget_per_hour", "gpus", "engines", "precisions", "max_gpus", "limit", "profile", "weights", "hf_config_json")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    SLA_FIELD_NUMBER: _ClassVar[int]
    BUDGET_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    PRECISIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_GPUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    HF_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    model: str
    workload: Workload
    sla: Sla
    budget_per_hour: float
    gpus: _containers.RepeatedScalarFieldContainer[str]
    engines: _containers.RepeatedScalarFieldContainer[str]
    precisions: _containers.RepeatedScalarFieldContainer[str]
    max_gpus: int
    limit: int
    profile: str
    weights: _containers.ScalarMap[str, float]
    hf_config_json: str
    def __init__(self, model: _Optional[str] = ..., workload: _Optional[_Union[Workload, _Mapping]] = ..., sla: _Optional[_Union[Sla, _Mapping]] = ..., budget_per_hour: _Optional[float] = ..., gpus: _Optional[_Iterable[str]] = ..., engines: _Optional[_Iterable[str]] = ..., precisions: _Optional[_Iterable[str]] = ..., max_gpus: _Optional[int] = ..., limit: _Optional[int] = ..., profile: _Optional[str] = ..., weights: _Optional[_Mapping[str, float]] = ..., hf_config_json: _Optional[str] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("weights_gib_per_gpu", "kv_gib_per_gpu", "total_gib_per_gpu", "max_concurrent_sequences", "output_tok_s_total", "ttft_p50_ms", "ttft_p95_ms", "tpot_ms", "fits")
    WEIGHTS_GIB_PER_GPU_FIELD_NUMBER: _ClassVar[int]
    KV_GIB_PER_GPU_FIELD_NUMBER: _ClassVar[int]
    TOTAL_GIB_PER_GPU_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOK_S_TOTAL_FIELD_NUMBER: _ClassVar[int]
    TTFT_P50_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_P95_MS_FIELD_NUMBER: _ClassVar[int]
    TPOT_MS_FIELD_NUMBER: _ClassVar[int]
    FITS_FIELD_NUMBER: _ClassVar[int]
    weights_gib_per_gpu: float
    kv_gib_per_gpu: float
    total_gib_per_gpu: float
    max_concurrent_sequences: int
    output_tok_s_total: float
    ttft_p50_ms: float
    ttft_p95_ms: float
    tpot_ms: float
    fits: bool
    def __init__(self, weights_gib_per_gpu: _Optional[float] = ..., kv_gib_per_gpu: _Optional[float] = ..., total_gib_per_gpu: _Optional[float] = ..., max_concurrent_sequences: _Optional[int] = ..., output_tok_s_total: _Optional[float] = ..., ttft_p50_ms: _Optional[float] = ..., ttft_p95_ms: _Optional[float] = ..., tpot_ms: _Optional[float] = ..., fits: _Optional[bool] = ...) -> None: ...

class DeploymentPlan(_message.Message):
    __slots__ = ("gpu", "gpu_count", "tp", "replicas", "engine", "precision", "prediction", "cost_per_hour", "cost_per_million_output_tokens", "score", "explanation", "pareto", "dimension_scores", "launch_command", "kubernetes_manifest")
    class DimensionScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    GPU_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    TP_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    COST_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    COST_PER_MILLION_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    PARETO_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_SCORES_FIELD_NUMBER: _ClassVar[int]
    LAUNCH_COMMAND_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    gpu: str
    gpu_count: int
    tp: int
    replicas: int
    engine: str
    precision: str
    prediction: Prediction
    cost_per_hour: float
    cost_per_million_output_tokens: float
    score: float
    explanation: str
    pareto: bool
    dimension_scores: _containers.ScalarMap[str, float]
    launch_command: str
    kubernetes_manifest: str
    def __init__(self, gpu: _Optional[str] = ..., gpu_count: _Optional[int] = ..., tp: _Optional[int] = ..., replicas: _Optional[int] = ..., engine: _Optional[str] = ..., precision: _Optional[str] = ..., prediction: _Optional[_Union[Prediction, _Mapping]] = ..., cost_per_hour: _Optional[float] = ..., cost_per_million_output_tokens: _Optional[float] = ..., score: _Optional[float] = ..., explanation: _Optional[str] = ..., pareto: _Optional[bool] = ..., dimension_scores: _Optional[_Mapping[str, float]] = ..., launch_command: _Optional[str] = ..., kubernetes_manifest: _Optional[str] = ...) -> None: ...

class PlanResponse(_message.Message):
    __slots__ = ("plans", "candidates_considered", "candidates_dropped", "resolved_model", "profile", "weights", "dropped_by_reason", "best_fitting")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class DroppedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class BestFittingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PLANS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_CONSIDERED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_MODEL_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    BEST_FITTING_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[DeploymentPlan]
    candidates_considered: int
    candidates_dropped: int
    resolved_model: str
    profile: str
    weights: _containers.ScalarMap[str, float]
    dropped_by_reason: _containers.ScalarMap[str, int]
    best_fitting: _containers.ScalarMap[str, float]
    def __init__(self, plans: _Optional[_Iterable[_Union[DeploymentPlan, _Mapping]]] = ..., candidates_considered: _Optional[int] = ..., candidates_dropped: _Optional[int] = ..., resolved_model: _Optional[str] = ..., profile: _Optional[str] = ..., weights: _Optional[_Mapping[str, float]] = ..., dropped_by_reason: _Optional[_Mapping[str, int]] = ..., best_fitting: _Optional[_Mapping[str, float]] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[PlanRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[PlanRequest, _Mapping]]] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[PlanResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[PlanResponse, _Mapping]]] = ...) -> None: ...

class EstimateInput(_message.Message):
    __slots__ = ("model", "gpu", "gpu_count", "tp", "engine", "precision", "isl", "osl", "concurrency", "request_rate")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    TP_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    ISL_FIELD_NUMBER: _ClassVar[int]
    OSL_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_RATE_FIELD_NUMBER: _ClassVar[int]
    model: str
    gpu: str
    gpu_count: int
    tp: int
    engine: str
    precision: str
    isl: int
    osl: int
    concurrency: int
    request_rate: float
    def __init__(self, model: _Optional[str] = ..., gpu: _Optional[str] = ..., gpu_count: _Optional[int] = ..., tp: _Optional[int] = ..., engine: _Optional[str] = ..., precision: _Optional[str] = ..., isl: _Optional[int] = ..., osl: _Optional[int] = ..., concurrency: _Optional[int] = ..., request_rate: _Optional[float] = ...) -> None: ...

class EstimateOutput(_message.Message):
    __slots__ = ("output_tok_s_total", "ttft_p50_ms", "ttft_p95_ms", "tpot_ms", "fits", "error", "prediction")
    OUTPUT_TOK_S_TOTAL_FIELD_NUMBER: _ClassVar[int]
    TTFT_P50_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_P95_MS_FIELD_NUMBER: _ClassVar[int]
    TPOT_MS_FIELD_NUMBER: _ClassVar[int]
    FITS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    output_tok_s_total: float
    ttft_p50_ms: float
    ttft_p95_ms: float
    tpot_ms: float
    fits: bool
    error: str
    prediction: Prediction
    def __init__(self, output_tok_s_total: _Optional[float] = ..., ttft_p50_ms: _Optional[float] = ..., ttft_p95_ms: _Optional[float] = ..., tpot_ms: _Optional[float] = ..., fits: _Optional[bool] = ..., error: _Optional[str] = ..., prediction: _Optional[_Union[Prediction, _Mapping]] = ...) -> None: ...

class EstimateRequest(_message.Message):
    __slots__ = ("inputs",)
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedCompositeFieldContainer[EstimateInput]
    def __init__(self, inputs: _Optional[_Iterable[_Union[EstimateInput, _Mapping]]] = ...) -> None: ...

class EstimateResponse(_message.Message):
    __slots__ = ("outputs",)
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[EstimateOutput]
    def __init__(self, outputs: _Optional[_Iterable[_Union[EstimateOutput, _Mapping]]] = ...) -> None: ...

class Gpu(_message.Message):
    __slots__ = ("name", "memory_gib", "hbm_bandwidth_gbs", "bf16_tflops", "fp8_tflops", "price_per_hour", "fp4_tflops", "interconnect_gbs", "source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_GIB_FIELD_NUMBER: _ClassVar[int]
    HBM_BANDWIDTH_GBS_FIELD_NUMBER: _ClassVar[int]
    BF16_TFLOPS_FIELD_NUMBER: _ClassVar[int]
    FP8_TFLOPS_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    FP4_TFLOPS_FIELD_NUMBER: _ClassVar[int]
    INTERCONNECT_GBS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    memory_gib: float
    hbm_bandwidth_gbs: float
    bf16_tflops: float
    fp8_tflops: float
    price_per_hour: float
    fp4_tflops: float
    interconnect_gbs: float
    source: str
    def __init__(self, name: _Optional[str] = ..., memory_gib: _Optional[float] = ..., hbm_bandwidth_gbs: _Optional[float] = ..., bf16_tflops: _Optional[float] = ..., fp8_tflops: _Optional[float] = ..., price_per_hour: _Optional[float] = ..., fp4_tflops: _Optional[float] = ..., interconnect_gbs: _Optional[float] = ..., source: _Optional[str] = ...) -> None: ...

class ListHardwareRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListHardwareResponse(_message.Message):
    __slots__ = ("gpus",)
    GPUS_FIELD_NUMBER: _ClassVar[int]
    gpus: _containers.RepeatedCompositeFieldContainer[Gpu]
    def __init__(self, gpus: _Optional[_Iterable[_Union[Gpu, _Mapping]]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("name", "params_b", "layers", "hidden", "heads", "kv_heads", "head_dim", "context_length", "active_params_b", "experts", "experts_per_token", "attention", "source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_B_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    KV_HEADS_FIELD_NUMBER: _ClassVar[int]
    HEAD_DIM_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_PARAMS_B_FIELD_NUMBER: _ClassVar[int]
    EXPERTS_FIELD_NUMBER: _ClassVar[int]
    EXPERTS_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    params_b: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    context_length: int
    active_params_b: float
    experts: int
    experts_per_token: int
    attention: str
    source: str
    def __init__(self, name: _Optional[str] = ..., params_b: _Optional[float] = ..., layers: _Optional[int] = ..., hidden: _Optional[int] = ..., heads: _Optional[int] = ..., kv_heads: _Optional[int] = ..., head_dim: _Optional[int] = ..., context_length: _Optional[int] = ..., active_params_b: _Optional[float] = ..., experts: _Optional[int] = ..., experts_per_token: _Optional[int] = ..., attention: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class FleetReportRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackendReport(_message.Message):
    __slots__ = ("backend_id", "model", "deployment", "requests", "mean_prompt_tokens", "mean_completion_tokens", "observed_concurrency", "observed_ttft_p50_ms", "observed_tpot_ms", "predicted_ttft_p50_ms", "predicted_tpot_ms", "ttft_error", "tpot_error", "note")
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    MEAN_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MEAN_COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_TTFT_P50_MS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_TPOT_MS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_TTFT_P50_MS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_TPOT_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_ERROR_FIELD_NUMBER: _ClassVar[int]
    TPOT_ERROR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    backend_id: str
    model: str
    deployment: str
    requests: int
    mean_prompt_tokens: float
    mean_completion_tokens: float
    observed_concurrency: float
    observed_ttft_p50_ms: float
    observed_tpot_ms: float
    predicted_ttft_p50_ms: float
    predicted_tpot_ms: float
    ttft_error: float
    tpot_error: float
    note: str
    def __init__(self, backend_id: _Optional[str] = ..., model: _Optional[str] = ..., deployment: _Optional[str] = ..., requests: _Optional[int] = ..., mean_prompt_tokens: _Optional[float] = ..., mean_completion_tokens: _Optional[float] = ..., observed_concurrency: _Optional[float] = ..., observed_ttft_p50_ms: _Optional[float] = ..., observed_tpot_ms: _Optional[float] = ..., predicted_ttft_p50_ms: _Optional[float] = ..., predicted_tpot_ms: _Optional[float] = ..., ttft_error: _Optional[float] = ..., tpot_error: _Optional[float] = ..., note: _Optional[str] = ...) -> None: ...

class FleetReportResponse(_message.Message):
    __slots__ = ("backends",)
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    backends: _containers.RepeatedCompositeFieldContainer[BackendReport]
    def __init__(self, backends: _Optional[_Iterable[_Union[BackendReport, _Mapping]]] = ...) -> None: ...
