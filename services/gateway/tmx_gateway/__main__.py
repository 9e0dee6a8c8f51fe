from __future__ import annotations

import socket
import sys

import uvloop

from tmx_gateway.settings import Settings
from tmx_gateway.spool import adopt_orphaned_spools
from tmx_telemetry import configure_logging


def run_one(settings: Settings, sock: socket.socket | None = None) -> None:
    from tmx_gateway.app import serve

    uvloop.run(serve(settings, sock))  # uvicorn handles SIGINT/SIGTERM and shuts down gracefully


def main() -> None:
    settings = Settings()
    configure_logging("gateway", settings.log_level)
    adopt_orphaned_spools(settings.spool_path, settings.workers)  # before any worker writes a spool
    if settings.workers > 1:
        from tmx_config import load_fleet
        from tmx_gateway.workers import run_workers

        load_fleet(settings.fleet_file)  # fail fast, before binding a port or forking
        sys.exit(run_workers(settings, run_one))
    run_one(settings)


if __name__ == "__main__":
    main()
