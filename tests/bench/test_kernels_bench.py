"""The kernel benchmark runs end to end (under the interpreter here) and writes the CSV it promises."""

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_kernel_benchmark_writes_verified_side_by_side_rows(tmp_path):
    out = tmp_path / "kernels.csv"
    subprocess.run([sys.executable, str(ROOT / "bench" / "kernels.py"), "--device", "cpu", "--ops",
                    "rmsnorm,kv_append", "--dtypes", "float32", "--repeats", "2", "--no-compile", "--csv", str(out)],
                   check=True, capture_output=True, timeout=300)
    rows = list(csv.DictReader(out.open()))
    assert {(r["op"], r["impl"]) for r in rows} == {("rmsnorm", "triton"), ("rmsnorm", "eager"),
                                                     ("kv_append", "triton"), ("kv_append", "eager")}
    triton_rows = [r for r in rows if r["impl"] == "triton"]
    assert all(r["verified"] == "True" and float(r["median_ms"]) > 0 and r["commit"] for r in triton_rows)
    eager = {r["op"]: float(r["median_ms"]) for r in rows if r["impl"] == "eager"}
    for r in triton_rows:  # the speedup column is the ratio of the two medians in the same run
        assert abs(float(r["speedup_vs_eager"]) - eager[r["op"]] / float(r["median_ms"])) < 0.01 * float(
            r["speedup_vs_eager"]) + 1e-3
