from tensormux.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Backend(_message.Message):
    __slots__ = ("id", "url", "models", "state", "consecutive_failures", "consecutive_successes", "last_error", "last_probe_unix_ms", "last_probe_latency_ms", "context_length", "passive_failures")
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_SUCCESSES_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_PROBE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_PROBE_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PASSIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    id: str
    url: str
    models: _containers.RepeatedScalarFieldContainer[str]
    state: _events_pb2.BackendState
    consecutive_failures: int
    consecutive_successes: int
    last_error: str
    last_probe_unix_ms: int
    last_probe_latency_ms: float
    context_length: int
    passive_failures: int
    def __init__(self, id: _Optional[str] = ..., url: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[_events_pb2.BackendState, str]] = ..., consecutive_failures: _Optional[int] = ..., consecutive_successes: _Optional[int] = ..., last_error: _Optional[str] = ..., last_probe_unix_ms: _Optional[int] = ..., last_probe_latency_ms: _Optional[float] = ..., context_length: _Optional[int] = ..., passive_failures: _Optional[int] = ...) -> None: ...

class ListBackendsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBackendsResponse(_message.Message):
    __slots__ = ("backends",)
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    backends: _containers.RepeatedCompositeFieldContainer[Backend]
    def __init__(self, backends: _Optional[_Iterable[_Union[Backend, _Mapping]]] = ...) -> None: ...

class GetBackendRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RegisterBackendRequest(_message.Message):
    __slots__ = ("id", "url", "models")
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    id: str
    url: str
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., url: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class DeregisterBackendRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeregisterBackendResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchBackendsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelEntry(_message.Message):
    __slots__ = ("id", "backend_ids", "healthy_backends", "context_length", "aliases")
    ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_IDS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_BACKENDS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    id: str
    backend_ids: _containers.RepeatedScalarFieldContainer[str]
    healthy_backends: int
    context_length: int
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., backend_ids: _Optional[_Iterable[str]] = ..., healthy_backends: _Optional[int] = ..., context_length: _Optional[int] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class DrainBackendRequest(_message.Message):
    __slots__ = ("id", "drain")
    ID_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    id: str
    drain: bool
    def __init__(self, id: _Optional[str] = ..., drain: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelEntry]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelEntry, _Mapping]]] = ...) -> None: ...
