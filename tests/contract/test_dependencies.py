"""Each service keeps its own dependencies: the gateway, health, planner and registry never load torch."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIGHT = {"gateway": "tmx_gateway.app", "health": "tmx_health.app", "planner": "tmx_planner.app",
         "registry": "tmx_registry.app", "engine-sim": "tmx_engine_sim.app"}


@pytest.mark.parametrize("service, module", sorted(LIGHT.items()))
def test_light_services_do_not_import_torch_or_triton(service, module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'triton') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    deps = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(d.startswith(("torch", "triton")) for d in deps)


def test_libs_never_import_services():
    for path in (ROOT / "libs").rglob("*.py"):
        if "tests" in path.parts or path.name.endswith("_pb2.py") or path.name.endswith("_pb2_grpc.py"):
            continue
        text = path.read_text()
        for service in ("tmx_gateway", "tmx_health", "tmx_planner", "tmx_registry", "tmx_forge", "tmx_engine_sim"):
            assert f"import {service}" not in text and f"from {service}" not in text, path


def test_domain_packages_import_no_adapters():
    for path in (ROOT / "services").glob("*/tmx_*/domain/**/*.py"):
        text = path.read_text()
        for adapter in ("grpc", "nats", "sqlalchemy", "starlette", "aiohttp", "uvicorn"):
            assert f"import {adapter}" not in text and f"from {adapter}" not in text, f"{path}: {adapter}"
