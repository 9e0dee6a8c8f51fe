from __future__ import annotations

import uvloop

from tmx_engine_sim.app import serve
from tmx_engine_sim.settings import Settings
from tmx_telemetry import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging("engine-sim", settings.log_level)
    uvloop.run(serve(settings))  # uvicorn handles SIGINT/SIGTERM and shuts down gracefully


if __name__ == "__main__":
    main()
