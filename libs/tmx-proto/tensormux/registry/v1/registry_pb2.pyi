from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Kernel(_message.Message):
    __slots__ = ("id", "op", "dtype", "hardware", "content_hash", "source", "config_json", "speedup", "evidence_json", "job_id", "created_at_unix_ms", "status", "provenance", "environment", "op_reference_hash")
    ID_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    SPEEDUP_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_JSON_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    OP_REFERENCE_HASH_FIELD_NUMBER: _ClassVar[int]
    id: str
    op: str
    dtype: str
    hardware: str
    content_hash: str
    source: str
    config_json: str
    speedup: float
    evidence_json: str
    job_id: str
    created_at_unix_ms: int
    status: str
    provenance: Provenance
    environment: Environment
    op_reference_hash: str
    def __init__(self, id: _Optional[str] = ..., op: _Optional[str] = ..., dtype: _Optional[str] = ..., hardware: _Optional[str] = ..., content_hash: _Optional[str] = ..., source: _Optional[str] = ..., config_json: _Optional[str] = ..., speedup: _Optional[float] = ..., evidence_json: _Optional[str] = ..., job_id: _Optional[str] = ..., created_at_unix_ms: _Optional[int] = ..., status: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., environment: _Optional[_Union[Environment, _Mapping]] = ..., op_reference_hash: _Optional[str] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("generator", "model", "prompt_hash", "worker_id", "toolchain_json")
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_HASH_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TOOLCHAIN_JSON_FIELD_NUMBER: _ClassVar[int]
    generator: str
    model: str
    prompt_hash: str
    worker_id: str
    toolchain_json: str
    def __init__(self, generator: _Optional[str] = ..., model: _Optional[str] = ..., prompt_hash: _Optional[str] = ..., worker_id: _Optional[str] = ..., toolchain_json: _Optional[str] = ...) -> None: ...

class Environment(_message.Message):
    __slots__ = ("device", "capability", "driver", "torch", "triton")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    TORCH_FIELD_NUMBER: _ClassVar[int]
    TRITON_FIELD_NUMBER: _ClassVar[int]
    device: str
    capability: str
    driver: str
    torch: str
    triton: str
    def __init__(self, device: _Optional[str] = ..., capability: _Optional[str] = ..., driver: _Optional[str] = ..., torch: _Optional[str] = ..., triton: _Optional[str] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("kind", "shape", "passed", "seed", "candidate_s", "baseline_s", "baseline", "speedup", "pairs_won", "pairs", "job_id", "created_at_unix_ms")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_S_FIELD_NUMBER: _ClassVar[int]
    BASELINE_S_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    SPEEDUP_FIELD_NUMBER: _ClassVar[int]
    PAIRS_WON_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    passed: bool
    seed: int
    candidate_s: float
    baseline_s: float
    baseline: str
    speedup: float
    pairs_won: int
    pairs: int
    job_id: str
    created_at_unix_ms: int
    def __init__(self, kind: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., passed: _Optional[bool] = ..., seed: _Optional[int] = ..., candidate_s: _Optional[float] = ..., baseline_s: _Optional[float] = ..., baseline: _Optional[str] = ..., speedup: _Optional[float] = ..., pairs_won: _Optional[int] = ..., pairs: _Optional[int] = ..., job_id: _Optional[str] = ..., created_at_unix_ms: _Optional[int] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("kernel_id", "op", "dtype", "hardware", "decision", "reason", "actor", "created_at_unix_ms")
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    kernel_id: str
    op: str
    dtype: str
    hardware: str
    decision: str
    reason: str
    actor: str
    created_at_unix_ms: int
    def __init__(self, kernel_id: _Optional[str] = ..., op: _Optional[str] = ..., dtype: _Optional[str] = ..., hardware: _Optional[str] = ..., decision: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ..., created_at_unix_ms: _Optional[int] = ...) -> None: ...

class OpSpec(_message.Message):
    __slots__ = ("name", "reference_hash", "reference_source", "tolerance_json", "created_at_unix_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_HASH_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    reference_hash: str
    reference_source: str
    tolerance_json: str
    created_at_unix_ms: int
    def __init__(self, name: _Optional[str] = ..., reference_hash: _Optional[str] = ..., reference_source: _Optional[str] = ..., tolerance_json: _Optional[str] = ..., created_at_unix_ms: _Optional[int] = ...) -> None: ...

class PublishKernelRequest(_message.Message):
    __slots__ = ("op", "dtype", "hardware", "source", "config_json", "speedup", "evidence_json", "job_id", "provenance", "environment", "runs", "op_spec")
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    SPEEDUP_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_JSON_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    OP_SPEC_FIELD_NUMBER: _ClassVar[int]
    op: str
    dtype: str
    hardware: str
    source: str
    config_json: str
    speedup: float
    evidence_json: str
    job_id: str
    provenance: Provenance
    environment: Environment
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    op_spec: OpSpec
    def __init__(self, op: _Optional[str] = ..., dtype: _Optional[str] = ..., hardware: _Optional[str] = ..., source: _Optional[str] = ..., config_json: _Optional[str] = ..., speedup: _Optional[float] = ..., evidence_json: _Optional[str] = ..., job_id: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., environment: _Optional[_Union[Environment, _Mapping]] = ..., runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., op_spec: _Optional[_Union[OpSpec, _Mapping]] = ...) -> None: ...

class GetKernelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListKernelsRequest(_message.Message):
    __slots__ = ("op", "hardware", "include_revoked")
    OP_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REVOKED_FIELD_NUMBER: _ClassVar[int]
    op: str
    hardware: str
    include_revoked: bool
    def __init__(self, op: _Optional[str] = ..., hardware: _Optional[str] = ..., include_revoked: _Optional[bool] = ...) -> None: ...

class ListKernelsResponse(_message.Message):
    __slots__ = ("kernels",)
    KERNELS_FIELD_NUMBER: _ClassVar[int]
    kernels: _containers.RepeatedCompositeFieldContainer[Kernel]
    def __init__(self, kernels: _Optional[_Iterable[_Union[Kernel, _Mapping]]] = ...) -> None: ...

class ResolveKernelRequest(_message.Message):
    __slots__ = ("op", "dtype", "hardware", "shape")
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    op: str
    dtype: str
    hardware: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, op: _Optional[str] = ..., dtype: _Optional[str] = ..., hardware: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class RevokeKernelRequest(_message.Message):
    __slots__ = ("id", "reason", "actor")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    actor: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class ListDecisionsRequest(_message.Message):
    __slots__ = ("op", "kernel_id", "limit")
    OP_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    op: str
    kernel_id: str
    limit: int
    def __init__(self, op: _Optional[str] = ..., kernel_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListDecisionsResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("kernel_id",)
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    kernel_id: str
    def __init__(self, kernel_id: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class GetOpSpecRequest(_message.Message):
    __slots__ = ("name", "reference_hash")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_HASH_FIELD_NUMBER: _ClassVar[int]
    name: str
    reference_hash: str
    def __init__(self, name: _Optional[str] = ..., reference_hash: _Optional[str] = ...) -> None: ...
