"""The fleet file (`tensormux.yaml`): backends, models, tenants and routing, shared by gateway and health."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _model_names(names: tuple[str, ...], what: str) -> tuple[str, ...]:
    """`names` (models or aliases), refused with `what` they are when one is blank."""
    if any(not name.strip() for name in names):
        raise ValueError(f"{what} must be model names or aliases, not empty strings")
    return names


def backend_id(value: str) -> str:
    """`value` if it may name a backend (it is part of NATS subjects); ValueError if not."""
    if not _ID.match(value):
        raise ValueError("backend id must be 1-64 letters, digits, '-' or '_'")
    return value


def backend_url(value: str) -> str:
    """`value` without a trailing slash if it is an http(s) URL with a host and, if it has one, a port in
    1..65535; ValueError if not."""
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError as exc:
        raise ValueError(f"backend url {value!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"backend url {value!r} must be http:// or https:// and name a host")
    if port == 0:
        raise ValueError(f"backend url {value!r} has port 0")
    return value.rstrip("/")


class BackendSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    url: str
    models: tuple[str, ...] = ()
    engine: str = "vllm"
    hardware: str = ""  # the GPU, e.g. H100; declaring it lets the planner compare predictions with reality
    gpu_count: int = Field(default=1, ge=1)
    tp: int = Field(default=1, ge=1)
    precision: str = "bf16"
    weight: float = 1.0
    # probing, per backend (unset: the health service's defaults)
    probe_interval_s: float | None = Field(default=None, gt=0)
    probe_timeout_s: float | None = Field(default=None, gt=0)
    fall_threshold: int | None = Field(default=None, ge=1)
    rise_threshold: int | None = Field(default=None, ge=1)

    @field_validator("id")
    @classmethod
    def _id_is_subject_safe(cls, value: str) -> str:
        return backend_id(value)

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        return backend_url(value)


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    aliases: tuple[str, ...] = ()
    context_length: int = 0
    # models (names or aliases) to answer with, in order, when none of this model's backends can: none healthy,
    # or each attempt refused or failed before its answer began (their own fallbacks are not followed)
    fallbacks: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _fallbacks_are_other_models(self) -> "ModelSpec":
        _model_names(self.fallbacks, f"model {self.name}: fallbacks")
        if self.name in self.fallbacks or set(self.aliases) & set(self.fallbacks):
            raise ValueError(f"model {self.name} cannot be its own fallback")
        if len(set(self.fallbacks)) != len(self.fallbacks):
            raise ValueError(f"model {self.name}: a fallback is named twice")
        return self


class TenantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    api_keys: tuple[str, ...] = ()
    rpm_limit: int = Field(default=0, ge=0)  # requests per minute, per gateway replica; 0: unlimited
    tpm_limit: int = Field(default=0, ge=0)  # prompt + completion tokens per minute, per gateway replica; 0: unlimited
    # the models (names or aliases) the tenant's keys may use and list; empty: every model
    models: tuple[str, ...] = ()

    @field_validator("models")
    @classmethod
    def _models_are_named(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _model_names(value, "a tenant's models")

    @field_validator("name")
    @classmethod
    def _name_is_subject_safe(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("tenant name must be 1-64 letters, digits, '-' or '_'")
        return value


class RoutingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = "least_inflight"  # the default for every model pool
    per_model: dict[str, str] = Field(default_factory=dict)  # model -> strategy
    multi_weights: dict[str, float] = Field(default_factory=dict)  # for strategy `multi`


class FleetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backends: tuple[BackendSpec, ...] = ()
    models: tuple[ModelSpec, ...] = ()
    tenants: tuple[TenantSpec, ...] = ()
    routing: RoutingSpec = Field(default_factory=RoutingSpec)

    def aliases(self) -> dict[str, str]:
        """Each alias the models declare -> the model's name."""
        return {alias: model.name for model in self.models for alias in model.aliases}

    @field_validator("backends")
    @classmethod
    def _unique_ids(cls, value: tuple[BackendSpec, ...]) -> tuple[BackendSpec, ...]:
        ids = [b.id for b in value]
        if len(ids) != len(set(ids)):
            raise ValueError("backend ids must be unique")
        return value


class FleetFileError(ValueError):
    pass


def load_fleet(path: str | Path) -> FleetFile:
    """Parse and validate a fleet file; errors name the file and the offending field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise FleetFileError(f"{path}: {exc}") from exc
    try:
        return FleetFile.model_validate(raw)
    except ValidationError as exc:
        raise FleetFileError(f"{path}: {exc}") from exc


def dump_fleet(fleet: FleetFile, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(fleet.model_dump(mode="json"), sort_keys=False))
