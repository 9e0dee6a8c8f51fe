"""`tmx forge verify` runs the forge's verifier on one file and prints its verdict."""

import json
import subprocess
import sys
from pathlib import Path

CANDIDATES = Path(__file__).resolve().parents[2] / "services" / "forge-worker" / "tests" / "candidates"


def verify(candidate: Path, *extra):
    return subprocess.run([sys.executable, "-m", "tmx_cli.main", "forge", "verify", "--op", "rmsnorm",
                           "--candidate", str(candidate), "--shape", "16x64", "--repeats", "2",
                           "--no-compile-baseline", *extra], capture_output=True, text=True, timeout=300)


def test_an_honest_file_gets_a_benchmarked_verdict_with_the_promotion_decision():
    out = verify(CANDIDATES / "honest_rmsnorm.py")
    assert out.returncode == 0, out.stdout + out.stderr
    verdict = json.loads(out.stdout)
    assert verdict["ok"] and verdict["benchmarked"] and set(verdict["shapes"]) == {"16x64"}
    speedup = verdict["shapes"]["16x64"]["speedup"]
    assert verdict["promotion"]["geomean_speedup"] == speedup  # one shape: the geomean is its speedup


def test_a_cheating_file_is_rejected_with_its_reason_and_exit_code():
    out = verify(CANDIDATES / "cheat_mutates_inputs.py")
    assert out.returncode == 1
    verdict = json.loads(out.stdout)
    assert verdict["reason_code"] == "modified_inputs"


def test_bad_arguments_fail_clearly(tmp_path):
    bad = verify(CANDIDATES / "honest_rmsnorm.py", "--dtype", "int4")
    assert bad.returncode == 1 and "unsupported dtype int4" in bad.stderr
    assert verify(CANDIDATES / "honest_rmsnorm.py", "--config", "[1]").returncode == 2
