"""Runs a candidate in a separate process with a wall-clock limit and reads back the harness's verdict."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CandidateResult:
    config: dict
    ok: bool
    reason: str
    shapes: dict = field(default_factory=dict)  # shape key -> {candidate_s, baseline_s, speedup}

    @property
    def speedups(self) -> dict[str, float]:
        return {k: v["speedup"] for k, v in self.shapes.items()}


async def verify(op: str, dtype: str, target: str, shapes: list[list[int]], config: dict, seed: int, repeats: int,
                 timeout_s: float) -> CandidateResult:
    request = {"op": op, "dtype": dtype, "target": target, "shapes": shapes, "config": config, "seed": seed,
               "repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="tmx-forge-") as scratch:
        result_path = os.path.join(scratch, "result.json")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tmx_forge.sandbox", json.dumps(request), result_path,
            cwd=scratch, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return CandidateResult(config, False, f"timed out after {timeout_s:g}s")
        try:
            with open(result_path) as fh:
                verdict = json.load(fh)
        except (OSError, ValueError):
            tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return CandidateResult(config, False, f"sandbox exited {proc.returncode} without a verdict: {tail[0]}")
    return CandidateResult(config, bool(verdict.get("ok")), verdict.get("reason", ""), verdict.get("shapes", {}))
