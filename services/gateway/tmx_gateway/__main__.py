from __future__ import annotations

import asyncio

from tmx_gateway.app import serve
from tmx_gateway.settings import Settings
from tmx_telemetry import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging("gateway", settings.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
