from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine


def run_until_signalled(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run a service's `serve(stop)` coroutine; SIGINT/SIGTERM set `stop` so it shuts down gracefully."""

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    asyncio.run(_main())


async def serve_until(stop: asyncio.Event, server, background: dict[str, Coroutine] | None = None,
                      cleanup: list[Callable[[], Awaitable[None] | None]] | None = None) -> None:
    """A started server's life: run its background loops, report SERVING, wait for `stop`, then stop the
    server first (no new calls), cancel the loops, and run the clean-ups in order."""
    tasks = [asyncio.create_task(coro, name=name) for name, coro in (background or {}).items()]
    await server.mark_serving()
    try:
        await stop.wait()
    finally:
        await server.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for step in cleanup or []:
            result = step()
            if result is not None:
                await result
