from __future__ import annotations

import uvloop

from tmx_gateway.app import serve
from tmx_gateway.settings import Settings
from tmx_telemetry import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging("gateway", settings.log_level)
    uvloop.run(serve(settings))  # uvicorn handles SIGINT/SIGTERM and shuts down gracefully


if __name__ == "__main__":
    main()
