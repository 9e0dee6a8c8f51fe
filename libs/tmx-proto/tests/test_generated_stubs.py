import subprocess
import sys
from pathlib import Path

GENERATE = Path(__file__).resolve().parents[1] / "generate.py"


def test_committed_stubs_match_the_protos():
    result = subprocess.run([sys.executable, str(GENERATE), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_design_service_is_generated():
    from tensormux.forge.v1 import forge_pb2
    from tensormux.health.v1 import health_pb2
    from tensormux.planner.v1 import planner_pb2
    from tensormux.registry.v1 import registry_pb2

    services = {
        "HealthService": (health_pb2, {"ListBackends", "GetBackend", "RegisterBackend", "DeregisterBackend",
                                       "WatchBackends", "ListModels", "DrainBackend"}),
        "PlannerService": (planner_pb2, {"Plan", "Compare", "Estimate", "ListHardware", "ListModels", "FleetReport"}),
        "RegistryService": (registry_pb2, {"PublishKernel", "GetKernel", "ListKernels", "ResolveKernel",
                                           "RevokeKernel", "ListDecisions", "ListRuns", "GetOpSpec"}),
        "ForgeService": (forge_pb2, {"SubmitJob", "GetJob", "ListJobs", "WatchJob", "CancelJob", "ListWorkers"}),
    }
    for name, (module, methods) in services.items():
        service = module.DESCRIPTOR.services_by_name[name]
        assert {m.name for m in service.methods} == methods
