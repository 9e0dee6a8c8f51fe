"""Configuration: one settings object per service (env `TMX_<SERVICE>_<SETTING>`), and the fleet file."""

from tmx_config.fleet import BackendSpec, FleetFile, ModelSpec, TenantSpec, load_fleet
from tmx_config.settings import service_settings_config

__all__ = ["BackendSpec", "FleetFile", "ModelSpec", "TenantSpec", "load_fleet", "service_settings_config"]
