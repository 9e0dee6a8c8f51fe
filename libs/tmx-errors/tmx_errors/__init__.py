"""Errors that domain code raises by meaning; adapters map each to a gRPC status or an HTTP error.

Domain modules import only this package, never grpc or starlette.
"""

from __future__ import annotations


class TmxError(Exception):
    """Base for errors a caller can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(TmxError):
    """The request is malformed; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFound(TmxError):
    pass


class AlreadyExists(TmxError):
    pass


class FailedPrecondition(TmxError):
    pass


class Unavailable(TmxError):
    """A dependency (database, NATS, a peer service) cannot be reached."""


__all__ = ["TmxError", "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition", "Unavailable"]
