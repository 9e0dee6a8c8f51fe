"""Noticing that a client has left, so the work done for it (the upstream request, a stream) is cancelled.

The ASGI server tells a handler only through `receive()`, so something must be waiting on it. Starlette's
`StreamingResponse` runs every stream in an anyio task group to do that (under uvicorn, which speaks ASGI 2.3):
a quarter of the gateway's CPU on streamed requests. Here one plain asyncio task waits, and only for work that
has already taken WATCH_AFTER_S: a quick answer pays for a timer, not for a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

T = TypeVar("T")

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"  # as Starlette and OpenAI write it
WATCH_AFTER_S = 0.05  # work still under way after this long is cancelled if its client leaves


async def cancelled_if_client_leaves(receive, work: Awaitable[T]) -> tuple[bool, T | None]:
    """Await `work`; if the client disconnects first, cancel it. (True, None) when the client left, else
    (False, its result). A cancellation from elsewhere propagates as usual."""
    handler = asyncio.current_task()
    gone = False
    watcher: asyncio.Task | None = None

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        handler.cancel()

    def start() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(watch())

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, start)
    try:
        return False, await work
    except asyncio.CancelledError:
        if not gone:
            raise
        handler.uncancel()
        return True, None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


class FinalChunk(bytes):
    """The last bytes of a stream, yielded by a relay that knows nothing follows: `RelayedStream` sends them with
    the response's end, so the server writes both at once (for a relay of an SSE stream: what ends with
    `[DONE]`). Yield nothing after one."""

    __slots__ = ()


class RelayedStream:
    """A streamed answer as an ASGI response, watched for the client leaving by `cancelled_if_client_leaves`
    instead of a task group. When the client leaves, its body iterator is closed at once, so the relay's own
    clean-up (closing the upstream request, releasing the backend) runs now, not when the iterator is collected.

    It has what the gateway reads of Starlette's `StreamingResponse` (`body_iterator`, `status_code`,
    `headers`) without its header normalisation and charset logic, as `http_api.UpstreamAnswer` does for
    whole answers. The chunks are bytes, sent as they come; a `FinalChunk` is sent with the end of the response,
    which saves the server a write (a syscall) per stream."""

    __slots__ = ("body_iterator", "headers")

    status_code = 200  # a stream starts only once its upstream answered 200

    def __init__(self, body_iterator: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        self.body_iterator = body_iterator
        self.headers = {**(headers or {}), "content-type": SSE_CONTENT_TYPE}

    async def __call__(self, scope, receive, send) -> None:
        try:
            await cancelled_if_client_leaves(receive, self._stream(send))
        finally:
            await self.body_iterator.aclose()

    async def _stream(self, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": [(name.encode("latin-1"), value.encode("latin-1"))
                                for name, value in self.headers.items()]})
        ended = False
        async for chunk in self.body_iterator:
            ended = type(chunk) is FinalChunk
            await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
