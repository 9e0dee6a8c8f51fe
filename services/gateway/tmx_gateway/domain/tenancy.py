"""Who is calling: API key -> tenant. With no keys configured the gateway is open and calls are `default`.
The admin views (fleet state, backend URLs) answer to a separate admin key."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from tmx_config import FleetFile

DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Caller:
    tenant: str
    api_key_id: str  # a short hash, never the key itself
    models: frozenset[str] = frozenset()  # the canonical models it may use; empty: every model

    def may_use(self, model: str) -> bool:
        """May this caller use `model` (its canonical name)?"""
        return not self.models or model in self.models


EVERY_MODEL = frozenset()


class Unauthorized(Exception):
    pass


class Forbidden(Exception):
    """No key could be right: the view is switched off."""


def _bearer(authorization: str | None) -> str:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return ""


def _same(key: str, secret: str) -> bool:
    return bool(secret) and hmac.compare_digest(key.encode(), secret.encode())


class Tenancy:
    def __init__(self, fleet: FleetFile) -> None:
        self._by_key = {key: tenant.name for tenant in fleet.tenants for key in tenant.api_keys}
        # tenant -> (requests, tokens) per minute, 0 meaning unlimited (see domain.rate_limits)
        self.limits = {tenant.name: (tenant.rpm_limit, tenant.tpm_limit) for tenant in fleet.tenants}
        # tenant -> the canonical names of the models it may use (its aliases resolved), where it is restricted;
        # a name the fleet file does not declare stands for itself (a backend may serve a model the health
        # service discovered)
        aliases = fleet.aliases()
        models = {tenant.name: frozenset(aliases.get(name, name) for name in tenant.models)
                  for tenant in fleet.tenants if tenant.models}
        # one Caller per key: identify builds nothing per request
        self._callers = {key: Caller(tenant, hashlib.sha256(key.encode()).hexdigest()[:12],
                                     models.get(tenant, EVERY_MODEL))
                         for key, tenant in self._by_key.items()}

    @property
    def open(self) -> bool:
        return not self._by_key

    def identify(self, authorization: str | None, sent_as: str = "Authorization: Bearer ...") -> Caller:
        """The caller a bearer `authorization` names; `sent_as`: where the client puts its key, for the error that
        says it is missing (Anthropic clients send `x-api-key`)."""
        key = _bearer(authorization)
        if self.open:
            return Caller(DEFAULT_TENANT, hashlib.sha256(key.encode()).hexdigest()[:12] if key else "")
        caller = self._callers.get(key)
        if caller is None:
            raise Unauthorized("invalid API key" if key else f"missing API key ({sent_as})")
        return caller

    def admit_admin(self, authorization: str | None, admin_key: str) -> None:
        """The admin views (`/admin/*`, the data behind `/ui`): they show backend URLs and every tenant's traffic.
        With an admin key set, that key only; without one, open while the gateway is open (no tenant keys) and
        off once it has tenants: a tenant's key must not read the whole fleet."""
        if not admin_key:
            if self.open:
                return
            raise Forbidden("admin views are off: this gateway has tenant keys but no admin key "
                            "(set TMX_GATEWAY_ADMIN_KEY)")
        key = _bearer(authorization)
        if not _same(key, admin_key):
            raise Unauthorized("invalid admin key" if key else "missing admin key (Authorization: Bearer ...)")

    def admit_reader(self, authorization: str | None, admin_key: str) -> frozenset[str]:
        """The model catalogue (`/v1/models`): any tenant's key or the admin key; anyone while the gateway is open.
        Returns the models the reader may see: a restricted tenant's, or EVERY_MODEL (empty)."""
        if self.open:
            return EVERY_MODEL
        key = _bearer(authorization)
        if (caller := self._callers.get(key)) is not None:
            return caller.models
        if _same(key, admin_key):
            return EVERY_MODEL
        raise Unauthorized("invalid API key" if key else "missing API key (Authorization: Bearer ...)")
