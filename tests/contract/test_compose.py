"""compose.yaml declares every service, port, health check and dependency (no Docker engine needed)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
PYTHON_SERVICES = {"registry": "50053", "health": "50051", "planner": "50052", "gateway": "8080"}


def test_every_service_is_declared_with_official_infrastructure_images():
    assert set(SERVICES) == {"nats", "postgres", "engine-sim-1", "engine-sim-2", "registry", "health", "planner",
                             "forge-worker", "gateway"}
    assert SERVICES["nats"]["image"].startswith("nats:") and "-js" in SERVICES["nats"]["command"]
    assert SERVICES["postgres"]["image"].startswith("postgres:")


@pytest.mark.parametrize("name", sorted(["nats", "postgres", "engine-sim-1", "engine-sim-2", "registry", "health",
                                          "planner", "forge-worker", "gateway"]))
def test_every_service_has_a_health_check(name):
    assert SERVICES[name]["healthcheck"]["test"]


@pytest.mark.parametrize("name, port", sorted(PYTHON_SERVICES.items()) + [("nats", "4222"), ("postgres", "5432")])
def test_default_ports_are_published(name, port):
    assert f"{port}:{port}" in SERVICES[name]["ports"]


@pytest.mark.parametrize("name, needs", [
    ("registry", {"nats", "postgres"}), ("health", {"nats", "engine-sim-1", "engine-sim-2"}),
    ("gateway", {"nats", "health"}), ("forge-worker", {"nats", "registry"}),
])
def test_dependencies_wait_for_health(name, needs):
    depends = SERVICES[name]["depends_on"]
    assert set(depends) == needs
    assert all(d["condition"] == "service_healthy" for d in depends.values())


def test_services_are_wired_to_each_other_by_compose_names():
    env = {name: SERVICES[name]["environment"] for name in ("registry", "health", "gateway", "forge-worker")}
    assert env["registry"]["TMX_REGISTRY_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["registry"]["TMX_REGISTRY_DATABASE_URL"]
    for name, key in (("registry", "TMX_REGISTRY_NATS_URL"), ("health", "TMX_HEALTH_NATS_URL"),
                      ("gateway", "TMX_GATEWAY_NATS_URL"), ("forge-worker", "TMX_FORGE_NATS_URL")):
        assert env[name][key] == "nats://nats:4222"
    assert env["forge-worker"]["TMX_FORGE_REGISTRY_ADDR"] == "registry:50053"
    for name, port in PYTHON_SERVICES.items():
        assert SERVICES[name]["environment"][f"TMX_{name.upper()}_PORT"] == port


def test_build_files_and_the_mounted_fleet_exist():
    for name, service in SERVICES.items():
        if "build" in service:
            assert (ROOT / service["build"]["dockerfile"]).is_file(), name
            service_arg = service["build"].get("args", {}).get("SERVICE")
            if service_arg:
                assert (ROOT / "services" / service_arg / "pyproject.toml").is_file()
    fleet = yaml.safe_load((ROOT / "deploy/compose/tensormux.yaml").read_text())
    hosts = {b["url"].split("//")[1].split(":")[0] for b in fleet["backends"]}
    assert hosts <= set(SERVICES)
