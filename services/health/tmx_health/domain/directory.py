"""The set of backends the health service watches: from the fleet file and from dynamic registration."""

from __future__ import annotations

from dataclasses import dataclass

from tmx_config import fleet
from tmx_errors import InvalidArgument, NotFound
from tmx_health.domain.state_machine import BackendHealth, State


@dataclass(frozen=True)
class ModelAvailability:
    name: str
    backend_ids: tuple[str, ...]
    healthy: int
    context_length: int = 0
    aliases: tuple[str, ...] = ()


class Directory:
    def __init__(self, aliases: dict[str, tuple[str, ...]] | None = None) -> None:
        self.backends: dict[str, BackendHealth] = {}
        self.aliases = aliases or {}  # model -> its aliases

    def register(self, backend_id: str, url: str, models: tuple[str, ...]) -> BackendHealth:
        try:
            fleet.backend_id(backend_id)
        except ValueError as exc:
            raise InvalidArgument("id", str(exc)) from None
        try:
            url = fleet.backend_url(url)
        except ValueError as exc:
            raise InvalidArgument("url", str(exc)) from None
        if not all(m.strip() for m in models):
            raise InvalidArgument("models", "a model name must not be empty")
        existing = self.backends.get(backend_id)
        if existing is not None and existing.url == url:
            existing.models = models or existing.models
            return existing
        backend = BackendHealth(backend_id, url, models)
        self.backends[backend_id] = backend
        return backend

    def get(self, backend_id: str) -> BackendHealth:
        try:
            return self.backends[backend_id]
        except KeyError:
            raise NotFound(f"backend {backend_id!r} is not registered") from None

    def remove(self, backend_id: str) -> BackendHealth:
        backend = self.get(backend_id)
        del self.backends[backend_id]
        return backend

    def models(self) -> list[ModelAvailability]:
        names = sorted({m for b in self.backends.values() for m in b.models})
        return [
            ModelAvailability(
                name,
                tuple(b.id for b in self.backends.values() if name in b.models),
                sum(1 for b in self.backends.values() if name in b.models and b.state == State.HEALTHY),
                max((b.context_length for b in self.backends.values() if name in b.models), default=0),
                self.aliases.get(name, ()),
            )
            for name in names
        ]
