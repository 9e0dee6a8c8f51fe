from __future__ import annotations

from pydantic_settings import SettingsConfigDict


def service_settings_config(service: str) -> SettingsConfigDict:
    """The one naming rule for settings: `TMX_<SERVICE>_<SETTING>` (e.g. TMX_GATEWAY_PORT).

    Services subclass pydantic_settings.BaseSettings with this as `model_config`, construct the settings
    once in `__main__`, and pass the object down; nothing else reads the environment.
    """
    prefix = service.upper().replace("-", "_")
    return SettingsConfigDict(env_prefix=f"TMX_{prefix}_", extra="ignore", frozen=True)
