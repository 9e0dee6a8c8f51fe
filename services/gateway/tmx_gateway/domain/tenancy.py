"""Who is calling: API key -> tenant. With no keys configured the gateway is open and calls are `default`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tmx_config import FleetFile

DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Caller:
    tenant: str
    api_key_id: str  # a short hash, never the key itself


class Unauthorized(Exception):
    pass


class Tenancy:
    def __init__(self, fleet: FleetFile) -> None:
        self._by_key = {key: tenant.name for tenant in fleet.tenants for key in tenant.api_keys}
        # tenant -> (requests, tokens) per minute, 0 meaning unlimited (see domain.rate_limits)
        self.limits = {tenant.name: (tenant.rpm_limit, tenant.tpm_limit) for tenant in fleet.tenants}

    @property
    def open(self) -> bool:
        return not self._by_key

    def identify(self, authorization: str | None) -> Caller:
        key = ""
        if authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        key_id = hashlib.sha256(key.encode()).hexdigest()[:12] if key else ""
        if self.open:
            return Caller(DEFAULT_TENANT, key_id)
        tenant = self._by_key.get(key)
        if tenant is None:
            raise Unauthorized("invalid API key" if key else "missing API key (Authorization: Bearer ...)")
        return Caller(tenant, key_id)
