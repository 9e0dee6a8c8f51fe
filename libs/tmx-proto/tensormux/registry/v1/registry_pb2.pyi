from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Kernel(_message.Message):
    __slots__ = ("id", "op", "dtype", "hardware", "content_hash", "source", "config_json", "speedup", "evidence_json", "job_id", "created_at_unix_ms")
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
    def __init__(self, id: _Optional[str] = ..., op: _Optional[str] = ..., dtype: _Optional[str] = ..., hardware: _Optional[str] = ..., content_hash: _Optional[str] = ..., source: _Optional[str] = ..., config_json: _Optional[str] = ..., speedup: _Optional[float] = ..., evidence_json: _Optional[str] = ..., job_id: _Optional[str] = ..., created_at_unix_ms: _Optional[int] = ...) -> None: ...

class PublishKernelRequest(_message.Message):
    __slots__ = ("op", "dtype", "hardware", "source", "config_json", "speedup", "evidence_json", "job_id")
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    SPEEDUP_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_JSON_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    op: str
    dtype: str
    hardware: str
    source: str
    config_json: str
    speedup: float
    evidence_json: str
    job_id: str
    def __init__(self, op: _Optional[str] = ..., dtype: _Optional[str] = ..., hardware: _Optional[str] = ..., source: _Optional[str] = ..., config_json: _Optional[str] = ..., speedup: _Optional[float] = ..., evidence_json: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class GetKernelRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListKernelsRequest(_message.Message):
    __slots__ = ("op", "hardware")
    OP_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    op: str
    hardware: str
    def __init__(self, op: _Optional[str] = ..., hardware: _Optional[str] = ...) -> None: ...

class ListKernelsResponse(_message.Message):
    __slots__ = ("kernels",)
    KERNELS_FIELD_NUMBER: _ClassVar[int]
    kernels: _containers.RepeatedCompositeFieldContainer[Kernel]
    def __init__(self, kernels: _Optional[_Iterable[_Union[Kernel, _Mapping]]] = ...) -> None: ...

class ResolveKernelRequest(_message.Message):
    __slots__ = ("op", "dtype", "hardware")
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    op: str
    dtype: str
    hardware: str
    def __init__(self, op: _Optional[str] = ..., dtype: _Optional[str] = ..., hardware: _Optional[str] = ...) -> None: ...
