from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BackendState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_STATE_UNSPECIFIED: _ClassVar[BackendState]
    BACKEND_STATE_UNKNOWN: _ClassVar[BackendState]
    BACKEND_STATE_HEALTHY: _ClassVar[BackendState]
    BACKEND_STATE_UNHEALTHY: _ClassVar[BackendState]
    BACKEND_STATE_DRAINING: _ClassVar[BackendState]
    BACKEND_STATE_SUSPECT: _ClassVar[BackendState]
    BACKEND_STATE_RECOVERING: _ClassVar[BackendState]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_PROMOTED: _ClassVar[JobState]
    JOB_STATE_NOT_PROMOTED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
BACKEND_STATE_UNSPECIFIED: BackendState
BACKEND_STATE_UNKNOWN: BackendState
BACKEND_STATE_HEALTHY: BackendState
BACKEND_STATE_UNHEALTHY: BackendState
BACKEND_STATE_DRAINING: BackendState
BACKEND_STATE_SUSPECT: BackendState
BACKEND_STATE_RECOVERING: BackendState
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_PROMOTED: JobState
JOB_STATE_NOT_PROMOTED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState

class BackendStateChanged(_message.Message):
    __slots__ = ("event_id", "occurred_at_unix_ms", "backend_id", "url", "models", "previous", "current", "reason", "consecutive_failures", "consecutive_successes", "context_length")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at_unix_ms: int
    backend_id: str
    url: str
    models: _containers.RepeatedScalarFieldContainer[str]
    previous: BackendState
    current: BackendState
    reason: str
    consecutive_failures: int
    consecutive_successes: int
    context_length: int
    def __init__(self, event_id: _Optional[str] = ..., occurred_at_unix_ms: _Optional[int] = ..., backend_id: _Optional[str] = ..., url: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., previous: _Optional[_Union[BackendState, str]] = ..., current: _Optional[_Union[BackendState, str]] = ..., reason: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., consecutive_successes: _Optional[int] = ..., context_length: _Optional[int] = ...) -> None: ...

class RequestOutcome(_message.Message):
    __slots__ = ("event_id", "occurred_at_unix_ms", "request_id", "gateway_id", "backend_id", "model", "endpoint", "http_status", "streamed", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "cached_tokens", "error", "request_at_fault")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    STREAMED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_AT_FAULT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at_unix_ms: int
    request_id: str
    gateway_id: str
    backend_id: str
    model: str
    endpoint: str
    http_status: int
    streamed: bool
    latency_ms: float
    ttft_ms: float
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    error: str
    request_at_fault: bool
    def __init__(self, event_id: _Optional[str] = ..., occurred_at_unix_ms: _Optional[int] = ..., request_id: _Optional[str] = ..., gateway_id: _Optional[str] = ..., backend_id: _Optional[str] = ..., model: _Optional[str] = ..., endpoint: _Optional[str] = ..., http_status: _Optional[int] = ..., streamed: _Optional[bool] = ..., latency_ms: _Optional[float] = ..., ttft_ms: _Optional[float] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cached_tokens: _Optional[int] = ..., error: _Optional[str] = ..., request_at_fault: _Optional[bool] = ...) -> None: ...

class RequestAudited(_message.Message):
    __slots__ = ("event_id", "occurred_at_unix_ms", "request_id", "tenant", "api_key_id", "model", "endpoint", "backend_id", "http_status", "streamed", "latency_ms", "prompt_tokens", "completion_tokens", "routing_strategy", "routing_reason", "client_ip", "routing_scores", "cached_tokens", "predicted_cached_tokens", "client_request_id", "traceparent")
    class RoutingScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    STREAMED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    ROUTING_REASON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    ROUTING_SCORES_FIELD_NUMBER: _ClassVar[int]
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at_unix_ms: int
    request_id: str
    tenant: str
    api_key_id: str
    model: str
    endpoint: str
    backend_id: str
    http_status: int
    streamed: bool
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    routing_strategy: str
    routing_reason: str
    client_ip: str
    routing_scores: _containers.ScalarMap[str, float]
    cached_tokens: int
    predicted_cached_tokens: int
    client_request_id: str
    traceparent: str
    def __init__(self, event_id: _Optional[str] = ..., occurred_at_unix_ms: _Optional[int] = ..., request_id: _Optional[str] = ..., tenant: _Optional[str] = ..., api_key_id: _Optional[str] = ..., model: _Optional[str] = ..., endpoint: _Optional[str] = ..., backend_id: _Optional[str] = ..., http_status: _Optional[int] = ..., streamed: _Optional[bool] = ..., latency_ms: _Optional[float] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., routing_strategy: _Optional[str] = ..., routing_reason: _Optional[str] = ..., client_ip: _Optional[str] = ..., routing_scores: _Optional[_Mapping[str, float]] = ..., cached_tokens: _Optional[int] = ..., predicted_cached_tokens: _Optional[int] = ..., client_request_id: _Optional[str] = ..., traceparent: _Optional[str] = ...) -> None: ...

class KernelJob(_message.Message):
    __slots__ = ("event_id", "occurred_at_unix_ms", "job_id", "op", "dtype", "shapes", "target", "generator", "max_candidates", "time_budget_s", "candidate_source", "reference_source")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPES_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    MAX_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TIME_BUDGET_S_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at_unix_ms: int
    job_id: str
    op: str
    dtype: str
    shapes: _containers.RepeatedCompositeFieldContainer[Shape]
    target: str
    generator: str
    max_candidates: int
    time_budget_s: float
    candidate_source: str
    reference_source: str
    def __init__(self, event_id: _Optional[str] = ..., occurred_at_unix_ms: _Optional[int] = ..., job_id: _Optional[str] = ..., op: _Optional[str] = ..., dtype: _Optional[str] = ..., shapes: _Optional[_Iterable[_Union[Shape, _Mapping]]] = ..., target: _Optional[str] = ..., generator: _Optional[str] = ..., max_candidates: _Optional[int] = ..., time_budget_s: _Optional[float] = ..., candidate_source: _Optional[str] = ..., reference_source: _Optional[str] = ...) -> None: ...

class Shape(_message.Message):
    __slots__ = ("dims",)
    DIMS_FIELD_NUMBER: _ClassVar[int]
    dims: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dims: _Optional[_Iterable[int]] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("event_id", "occurred_at_unix_ms", "job_id", "state", "step", "message", "worker_id", "kernel_id", "best_speedup")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    BEST_SPEEDUP_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at_unix_ms: int
    job_id: str
    state: JobState
    step: str
    message: str
    worker_id: str
    kernel_id: str
    best_speedup: float
    def __init__(self, event_id: _Optional[str] = ..., occurred_at_unix_ms: _Optional[int] = ..., job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., step: _Optional[str] = ..., message: _Optional[str] = ..., worker_id: _Optional[str] = ..., kernel_id: _Optional[str] = ..., best_speedup: _Optional[float] = ...) -> None: ...

class ForgeWorker(_message.Message):
    __slots__ = ("worker_id", "target", "ops", "generators", "torch", "triton", "started_at_unix_ms", "seen_at_unix_ms")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    GENERATORS_FIELD_NUMBER: _ClassVar[int]
    TORCH_FIELD_NUMBER: _ClassVar[int]
    TRITON_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SEEN_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    target: str
    ops: _containers.RepeatedScalarFieldContainer[str]
    generators: _containers.RepeatedScalarFieldContainer[str]
    torch: str
    triton: str
    started_at_unix_ms: int
    seen_at_unix_ms: int
    def __init__(self, worker_id: _Optional[str] = ..., target: _Optional[str] = ..., ops: _Optional[_Iterable[str]] = ..., generators: _Optional[_Iterable[str]] = ..., torch: _Optional[str] = ..., triton: _Optional[str] = ..., started_at_unix_ms: _Optional[int] = ..., seen_at_unix_ms: _Optional[int] = ...) -> None: ...

class KernelPromoted(_message.Message):
    __slots__ = ("event_id", "occurred_at_unix_ms", "kernel_id", "op", "dtype", "hardware", "content_hash", "speedup")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    SPEEDUP_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at_unix_ms: int
    kernel_id: str
    op: str
    dtype: str
    hardware: str
    content_hash: str
    speedup: float
    def __init__(self, event_id: _Optional[str] = ..., occurred_at_unix_ms: _Optional[int] = ..., kernel_id: _Optional[str] = ..., op: _Optional[str] = ..., dtype: _Optional[str] = ..., hardware: _Optional[str] = ..., content_hash: _Optional[str] = ..., speedup: _Optional[float] = ...) -> None: ...

class LoadSnapshot(_message.Message):
    __slots__ = ("event_id", "occurred_at_unix_ms", "backend_id", "engine", "running", "waiting", "kv_cache_usage", "prefix_cache_hit_rate")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    KV_CACHE_USAGE_FIELD_NUMBER: _ClassVar[int]
    PREFIX_CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at_unix_ms: int
    backend_id: str
    engine: str
    running: float
    waiting: float
    kv_cache_usage: float
    prefix_cache_hit_rate: float
    def __init__(self, event_id: _Optional[str] = ..., occurred_at_unix_ms: _Optional[int] = ..., backend_id: _Optional[str] = ..., engine: _Optional[str] = ..., running: _Optional[float] = ..., waiting: _Optional[float] = ..., kv_cache_usage: _Optional[float] = ..., prefix_cache_hit_rate: _Optional[float] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("event_id", "occurred_at_unix_ms", "event_type", "events")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    occurred_at_unix_ms: int
    event_type: str
    events: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, event_id: _Optional[str] = ..., occurred_at_unix_ms: _Optional[int] = ..., event_type: _Optional[str] = ..., events: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RequestOutcomeColumns(_message.Message):
    __slots__ = ("event_id", "occurred_at_unix_ms", "request_id", "gateway_id", "backend_id", "model", "endpoint", "http_status", "streamed", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens", "cached_tokens", "error", "request_at_fault")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    STREAMED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_AT_FAULT_FIELD_NUMBER: _ClassVar[int]
    event_id: _containers.RepeatedScalarFieldContainer[str]
    occurred_at_unix_ms: _containers.RepeatedScalarFieldContainer[int]
    request_id: _containers.RepeatedScalarFieldContainer[str]
    gateway_id: _containers.RepeatedScalarFieldContainer[str]
    backend_id: _containers.RepeatedScalarFieldContainer[str]
    model: _containers.RepeatedScalarFieldContainer[str]
    endpoint: _containers.RepeatedScalarFieldContainer[str]
    http_status: _containers.RepeatedScalarFieldContainer[int]
    streamed: _containers.RepeatedScalarFieldContainer[bool]
    latency_ms: _containers.RepeatedScalarFieldContainer[float]
    ttft_ms: _containers.RepeatedScalarFieldContainer[float]
    prompt_tokens: _containers.RepeatedScalarFieldContainer[int]
    completion_tokens: _containers.RepeatedScalarFieldContainer[int]
    cached_tokens: _containers.RepeatedScalarFieldContainer[int]
    error: _containers.RepeatedScalarFieldContainer[str]
    request_at_fault: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, event_id: _Optional[_Iterable[str]] = ..., occurred_at_unix_ms: _Optional[_Iterable[int]] = ..., request_id: _Optional[_Iterable[str]] = ..., gateway_id: _Optional[_Iterable[str]] = ..., backend_id: _Optional[_Iterable[str]] = ..., model: _Optional[_Iterable[str]] = ..., endpoint: _Optional[_Iterable[str]] = ..., http_status: _Optional[_Iterable[int]] = ..., streamed: _Optional[_Iterable[bool]] = ..., latency_ms: _Optional[_Iterable[float]] = ..., ttft_ms: _Optional[_Iterable[float]] = ..., prompt_tokens: _Optional[_Iterable[int]] = ..., completion_tokens: _Optional[_Iterable[int]] = ..., cached_tokens: _Optional[_Iterable[int]] = ..., error: _Optional[_Iterable[str]] = ..., request_at_fault: _Optional[_Iterable[bool]] = ...) -> None: ...

class RequestAuditedColumns(_message.Message):
    __slots__ = ("event_id", "occurred_at_unix_ms", "request_id", "tenant", "api_key_id", "model", "endpoint", "backend_id", "http_status", "streamed", "latency_ms", "prompt_tokens", "completion_tokens", "routing_strategy", "routing_reason", "client_ip", "routing_scores_count", "cached_tokens", "predicted_cached_tokens", "routing_scores_keys", "routing_scores_values", "client_request_id", "traceparent")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_ID_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    STREAMED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    ROUTING_REASON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_IP_FIELD_NUMBER: _ClassVar[int]
    ROUTING_SCORES_COUNT_FIELD_NUMBER: _ClassVar[int]
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_SCORES_KEYS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_SCORES_VALUES_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    event_id: _containers.RepeatedScalarFieldContainer[str]
    occurred_at_unix_ms: _containers.RepeatedScalarFieldContainer[int]
    request_id: _containers.RepeatedScalarFieldContainer[str]
    tenant: _containers.RepeatedScalarFieldContainer[str]
    api_key_id: _containers.RepeatedScalarFieldContainer[str]
    model: _containers.RepeatedScalarFieldContainer[str]
    endpoint: _containers.RepeatedScalarFieldContainer[str]
    backend_id: _containers.RepeatedScalarFieldContainer[str]
    http_status: _containers.RepeatedScalarFieldContainer[int]
    streamed: _containers.RepeatedScalarFieldContainer[bool]
    latency_ms: _containers.RepeatedScalarFieldContainer[float]
    prompt_tokens: _containers.RepeatedScalarFieldContainer[int]
    completion_tokens: _containers.RepeatedScalarFieldContainer[int]
    routing_strategy: _containers.RepeatedScalarFieldContainer[str]
    routing_reason: _containers.RepeatedScalarFieldContainer[str]
    client_ip: _containers.RepeatedScalarFieldContainer[str]
    routing_scores_count: _containers.RepeatedScalarFieldContainer[int]
    cached_tokens: _containers.RepeatedScalarFieldContainer[int]
    predicted_cached_tokens: _containers.RepeatedScalarFieldContainer[int]
    routing_scores_keys: _containers.RepeatedScalarFieldContainer[str]
    routing_scores_values: _containers.RepeatedScalarFieldContainer[float]
    client_request_id: _containers.RepeatedScalarFieldContainer[str]
    traceparent: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, event_id: _Optional[_Iterable[str]] = ..., occurred_at_unix_ms: _Optional[_Iterable[int]] = ..., request_id: _Optional[_Iterable[str]] = ..., tenant: _Optional[_Iterable[str]] = ..., api_key_id: _Optional[_Iterable[str]] = ..., model: _Optional[_Iterable[str]] = ..., endpoint: _Optional[_Iterable[str]] = ..., backend_id: _Optional[_Iterable[str]] = ..., http_status: _Optional[_Iterable[int]] = ..., streamed: _Optional[_Iterable[bool]] = ..., latency_ms: _Optional[_Iterable[float]] = ..., prompt_tokens: _Optional[_Iterable[int]] = ..., completion_tokens: _Optional[_Iterable[int]] = ..., routing_strategy: _Optional[_Iterable[str]] = ..., routing_reason: _Optional[_Iterable[str]] = ..., client_ip: _Optional[_Iterable[str]] = ..., routing_scores_count: _Optional[_Iterable[int]] = ..., cached_tokens: _Optional[_Iterable[int]] = ..., predicted_cached_tokens: _Optional[_Iterable[int]] = ..., routing_scores_keys: _Optional[_Iterable[str]] = ..., routing_scores_values: _Optional[_Iterable[float]] = ..., client_request_id: _Optional[_Iterable[str]] = ..., traceparent: _Optional[_Iterable[str]] = ...) -> None: ...
