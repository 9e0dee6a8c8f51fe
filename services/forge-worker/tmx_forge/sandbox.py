"""Runs ONE candidate configuration in a fresh process: correctness against the reference on fresh seeded
inputs, then interleaved timing against the eager baseline. Invoked by the verifier as
`python -m tmx_forge.sandbox REQUEST_JSON RESULT_PATH`; the verdict is written to RESULT_PATH by this
harness, never by the candidate.

On the `cpu` target Triton runs under its interpreter (TRITON_INTERPRET=1 is set before triton loads).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def _outputs(result) -> tuple:
    return result if isinstance(result, tuple) else (result,)


def _time(fn, device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run(request: dict) -> dict:
    import torch

    from tmx_kernels import get_op

    op = get_op(request["op"])
    dtype = _dtype(request["dtype"])
    device = "cpu" if request["target"] == "cpu" else "cuda"
    config, repeats = request["config"], request["repeats"]
    tol = op.tolerances[dtype]
    per_shape = {}
    for i, shape in enumerate(request["shapes"]):
        key = "x".join(map(str, shape))
        inputs = op.make_inputs(shape, dtype, request["seed"] + i, device)
        expected = _outputs(op.reference(*inputs))
        got = _outputs(op.launch(*inputs, **config))
        if len(got) != len(expected):
            return {"ok": False, "reason": f"shape {key}: {len(got)} outputs, the reference has {len(expected)}"}
        for n, (g, e) in enumerate(zip(got, expected)):
            if g.shape != e.shape or g.dtype != e.dtype:
                return {"ok": False, "reason": f"shape {key}: output {n} {tuple(g.shape)}/{g.dtype} != reference"}
            if not torch.allclose(g.float(), e.float(), atol=tol.atol, rtol=tol.rtol):
                err = (g.float() - e.float()).abs().max().item()
                return {"ok": False, "reason": f"shape {key}: output {n} max abs error {err:.3g} exceeds atol "
                                              f"{tol.atol}"}
        op.launch(*inputs, **config), op.baseline(*inputs)  # warm-up (compilation, caches)
        cand, base = [], []
        for _ in range(repeats):  # interleaved so drift hits both sides alike
            cand.append(_time(lambda: op.launch(*inputs, **config), device))
            base.append(_time(lambda: op.baseline(*inputs), device))
        c, b = statistics.median(cand), statistics.median(base)
        per_shape[key] = {"candidate_s": c, "baseline_s": b, "speedup": b / c if c > 0 else 0.0}
    return {"ok": True, "reason": "", "shapes": per_shape}


def main() -> None:
    request_json, result_path = sys.argv[1], sys.argv[2]
    request = json.loads(request_json)
    if request["target"] == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    try:
        result = run(request)
    except Exception as exc:  # noqa: BLE001 - any failure is a verdict, reported with its type
        result = {"ok": False, "reason": f"candidate raised {type(exc).__name__}: {exc}"}
    with open(result_path, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
