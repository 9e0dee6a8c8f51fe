from __future__ import annotations

import asyncio
import signal

from tmx_health.app import serve
from tmx_health.settings import Settings
from tmx_telemetry import configure_logging


async def _run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def main() -> None:
    settings = Settings()
    configure_logging("health", settings.log_level)
    asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
