"""Noticing that a client has left, so the work done for it (the upstream request, a stream) is cancelled.

The ASGI server tells a handler only through `receive()`, so something must be waiting on it. Starlette's
`StreamingResponse` runs every stream in an anyio task group to do that (under uvicorn, which speaks ASGI 2.3):
a quarter of the gateway's CPU on streamed requests. Here one plain asyncio task waits, and only for work that
has already taken WATCH_AFTER_S: a quick answer pays for a timer, not for a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.responses import StreamingResponse

T = TypeVar("T")

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


class RelayedStream(StreamingResponse):
    """A streamed answer: Starlette's response, watched for the client leaving by `cancelled_if_client_leaves`
    instead of a task group. When the client leaves, its body iterator is closed at once, so the relay's own
    clean-up (closing the upstream request, releasing the backend) runs now, not when the iterator is collected."""

    async def __call__(self, scope, receive, send) -> None:
        try:
            await cancelled_if_client_leaves(receive, self.stream_response(send))
        finally:
            if hasattr(self.body_iterator, "aclose"):
                await self.body_iterator.aclose()
        if self.background is not None:
            await self.background()
