from __future__ import annotations

from tmx_forge.app import serve
from tmx_forge.settings import Settings
from tmx_grpcserver import run_until_signalled
from tmx_telemetry import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging("forge-worker", settings.log_level)
    run_until_signalled(lambda stop: serve(settings, stop))


if __name__ == "__main__":
    main()
