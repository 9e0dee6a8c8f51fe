from tensormux.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Job(_message.Message):
    __slots__ = ("id", "op", "dtype", "shapes", "target", "generator", "state", "reason", "kernel_id", "best_speedup", "created_at_unix_ms", "updated_at_unix_ms", "max_candidates", "time_budget_s", "candidate_source", "reference_source")
    ID_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPES_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    KERNEL_ID_FIELD_NUMBER: _ClassVar[int]
    BEST_SPEEDUP_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TIME_BUDGET_S_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    op: str
    dtype: str
    shapes: _containers.RepeatedCompositeFieldContainer[_events_pb2.Shape]
    target: str
    generator: str
    state: _events_pb2.JobState
    reason: str
    kernel_id: str
    best_speedup: float
    created_at_unix_ms: int
    updated_at_unix_ms: int
    max_candidates: int
    time_budget_s: float
    candidate_source: str
    reference_source: str
    def __init__(self, id: _Optional[str] = ..., op: _Optional[str] = ..., dtype: _Optional[str] = ..., shapes: _Optional[_Iterable[_Union[_events_pb2.Shape, _Mapping]]] = ..., target: _Optional[str] = ..., generator: _Optional[str] = ..., state: _Optional[_Union[_events_pb2.JobState, str]] = ..., reason: _Optional[str] = ..., kernel_id: _Optional[str] = ..., best_speedup: _Optional[float] = ..., created_at_unix_ms: _Optional[int] = ..., updated_at_unix_ms: _Optional[int] = ..., max_candidates: _Optional[int] = ..., time_budget_s: _Optional[float] = ..., candidate_source: _Optional[str] = ..., reference_source: _Optional[str] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("op", "dtype", "shapes", "target", "generator", "max_candidates", "time_budget_s", "candidate_source", "reference_source")
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPES_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    MAX_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TIME_BUDGET_S_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    op: str
    dtype: str
    shapes: _containers.RepeatedCompositeFieldContainer[_events_pb2.Shape]
    target: str
    generator: str
    max_candidates: int
    time_budget_s: float
    candidate_source: str
    reference_source: str
    def __init__(self, op: _Optional[str] = ..., dtype: _Optional[str] = ..., shapes: _Optional[_Iterable[_Union[_events_pb2.Shape, _Mapping]]] = ..., target: _Optional[str] = ..., generator: _Optional[str] = ..., max_candidates: _Optional[int] = ..., time_budget_s: _Optional[float] = ..., candidate_source: _Optional[str] = ..., reference_source: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[_events_pb2.ForgeWorker]
    def __init__(self, workers: _Optional[_Iterable[_Union[_events_pb2.ForgeWorker, _Mapping]]] = ...) -> None: ...
