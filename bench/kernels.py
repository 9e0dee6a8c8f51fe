"""Kernel benchmark: every op in the registry, Triton vs eager PyTorch vs torch.compile, side by side.

On a GPU (the real measurement): the op's production shapes, median of --repeats runs timed with CUDA events,
the L2 cache flushed (a 256 MB write) before every run, each result checked against the reference first.
Bandwidth is reported in GB/s and as % of the measured device copy bandwidth; compute-bound ops in TFLOP/s
and as % of the measured dense bf16 matmul rate.

On CPU (`--device cpu`) it runs the same code path on the ops' small test shapes under the Triton
interpreter: a check that the script works, not a measurement of the kernels.

    python bench/kernels.py                          # all ops, cuda
    python bench/kernels.py --ops rmsnorm,attention --dtypes bfloat16
    python bench/kernels.py --device cpu --ops rmsnorm --repeats 3 --no-compile

Rows go to a CSV keyed by op, shape, dtype, device and commit (default bench/results/kernels-<device>.csv).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

FIELDS = ["op", "shape", "dtype", "device", "commit", "impl", "median_ms", "gb_per_s", "pct_of_copy", "tflops",
          "pct_of_matmul", "speedup_vs_eager", "verified"]


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--ops", default="", help="comma-separated op names (default: all)")
    parser.add_argument("--dtypes", default="bfloat16,float16")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--csv", type=Path, default=None)
    return parser.parse_args()


class Timer:
    """Median wall time of fn(), with the cache flushed before each run (GPU: CUDA events around fn only)."""

    def __init__(self, device: str, repeats: int) -> None:
        import torch

        self.torch, self.device, self.repeats = torch, device, repeats
        self.flush = torch.empty(256 * 2**20 if device == "cuda" else 32 * 2**20, dtype=torch.int8, device=device)

    def __call__(self, fn) -> float:
        torch = self.torch
        fn()  # warm-up: compilation, autotuning caches, allocator
        times = []
        for _ in range(self.repeats):
            self.flush.zero_()
            if self.device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)


def copy_bandwidth(timer: Timer, device: str) -> float:
    """Bytes per second of a device-to-device copy (read + write) of 1 GiB (64 MiB on CPU)."""
    torch = timer.torch
    n = 2**30 if device == "cuda" else 2**26
    src, dst = torch.empty(n, dtype=torch.int8, device=device), torch.empty(n, dtype=torch.int8, device=device)
    return 2 * n / timer(lambda: dst.copy_(src))


def matmul_rate(timer: Timer, device: str) -> float:
    torch = timer.torch
    n = 8192 if device == "cuda" else 512
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / timer(lambda: a @ b)


def _verified(op, inputs, dtype) -> bool:
    from tmx_kernels import as_outputs, clone_inputs

    expected = as_outputs(op.reference(*clone_inputs(inputs)))
    return op.mismatch(as_outputs(op.launch(*clone_inputs(inputs), **op.default_config)), expected, dtype) is None


def bench_op(op, shape, dtype, timer: Timer, device: str, copy_bps: float, matmul_fps: float, compile_: bool,
             label: dict) -> list[dict]:
    import torch

    inputs = op.make_inputs(shape, dtype, 0, device)
    verified = _verified(op, inputs, dtype)
    impls = {"triton": lambda: op.launch(*inputs, **op.default_config), "eager": lambda: op.baseline(*inputs)}
    if compile_:
        compiled = torch.compile(op.baseline)
        impls["torch.compile"] = lambda: compiled(*inputs)
    seconds = {}
    for name, fn in impls.items():
        try:
            seconds[name] = timer(fn)
        except Exception as exc:  # noqa: BLE001 - one impl failing (a compile error) must not end the run
            print(f"  {op.name} {shape} {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    moved, work = op.bytes_moved(shape, dtype), op.flops(shape)
    rows = []
    for name, s in seconds.items():
        gbps = moved / s / 1e9
        rows.append({**label, "op": op.name, "shape": "x".join(map(str, shape)), "dtype": str(dtype).split(".")[-1],
                     "impl": name, "median_ms": round(s * 1e3, 4), "gb_per_s": round(gbps, 1),
                     "pct_of_copy": round(100 * moved / s / copy_bps, 1),
                     "tflops": round(work / s / 1e12, 2) if work else "",
                     "pct_of_matmul": round(100 * work / s / matmul_fps, 1) if work else "",
                     "speedup_vs_eager": round(seconds["eager"] / s, 3) if "eager" in seconds else "",
                     "verified": verified if name == "triton" else ""})
    return rows


def main() -> None:
    args = _parse()
    if args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
    import torch

    import record
    from tmx_kernels import get_op, op_names

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu to check the script under the interpreter")
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else record.machine()["cpu"]
    label = {"device": device_name, "commit": record.machine()["commit"]}
    names = [n for n in args.ops.split(",") if n] or op_names()
    dtypes = [getattr(torch, d) for d in args.dtypes.split(",")]
    timer = Timer(args.device, args.repeats)
    copy_bps, matmul_fps = copy_bandwidth(timer, args.device), matmul_rate(timer, args.device)
    print(f"{device_name}: copy {copy_bps / 1e9:.0f} GB/s, matmul {matmul_fps / 1e12:.1f} TFLOP/s")
    path = args.csv or record.RESULTS / f"kernels-{args.device}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for name in names:
            op = get_op(name)
            shapes = op.bench_shapes if args.device == "cuda" else op.test_shapes[-1:]
            for shape in shapes:
                for dtype in dtypes:
                    for row in bench_op(op, shape, dtype, timer, args.device, copy_bps, matmul_fps,
                                        not args.no_compile, label):
                        writer.writerow(row)
                        print(f"{row['op']:>16} {row['shape']:>18} {row['dtype']:>8} {row['impl']:>13} "
                              f"{row['median_ms']:>9} ms {row['gb_per_s']:>8} GB/s {row['pct_of_copy']:>6}% "
                              f"x{row['speedup_vs_eager']}")
                    fh.flush()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
