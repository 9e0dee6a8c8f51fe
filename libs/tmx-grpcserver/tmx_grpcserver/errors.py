"""The one mapping from domain errors to gRPC status codes, applied to servicer methods by decorator."""

from __future__ import annotations

import functools
import inspect
import logging

import grpc

from tmx_errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, TmxError, Unavailable

log = logging.getLogger(__name__)

_STATUS = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_for(exc: TmxError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return grpc.StatusCode.INTERNAL


def grpc_errors(method):
    """Wrap an aio servicer method (unary or server-streaming) so domain errors become precise statuses.

    Anything unnamed is logged with its traceback and returned as INTERNAL with no internals leaked.
    """

    async def _abort(context: grpc.aio.ServicerContext, exc: BaseException):
        if isinstance(exc, TmxError):
            await context.abort(status_for(exc), exc.message)
        log.exception("unhandled error in %s", method.__qualname__)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream_wrapper(self, request, context):
            try:
                async for item in method(self, request, context):
                    yield item
            except (grpc.aio.AbortError, GeneratorExit):
                raise
            except Exception as exc:  # noqa: BLE001 - mapped, never swallowed
                await _abort(context, exc)

        return stream_wrapper

    @functools.wraps(method)
    async def unary_wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped, never swallowed
            await _abort(context, exc)

    return unary_wrapper
