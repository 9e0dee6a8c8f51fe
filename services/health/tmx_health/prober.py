"""Active probes over HTTP."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: float
    error: str = ""


@dataclass(frozen=True)
class ServedModel:
    id: str
    context_length: int


def _context_length(value) -> int:
    """A model's max_model_len as an engine reports it; 0 (unknown) for anything but a positive integer (a
    malformed one raised, which failed that probe cycle before its result was counted)."""
    return value if type(value) is int and value > 0 else 0


class Prober:
    def __init__(self, session: aiohttp.ClientSession, path: str, timeout_s: float) -> None:
        self.session, self.path = session, path
        self.timeout_s = timeout_s

    async def models(self, base_url: str, timeout_s: float | None = None) -> list[ServedModel] | None:
        """The backend's /v1/models (vLLM and SGLang report max_model_len); None when it cannot be read."""
        try:
            async with self.session.get(base_url + "/v1/models",
                                        timeout=aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)) as resp:
                if resp.status != 200:
                    return None
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError, RecursionError):
            return None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            return None
        return [ServedModel(m["id"], _context_length(m.get("max_model_len"))) for m in data
                if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]]

    async def metrics(self, base_url: str, timeout_s: float | None = None) -> dict[str, float] | None:
        """The engine's /metrics as {sample name: value summed over labels}; None when it has none."""
        try:
            async with self.session.get(base_url + "/metrics",
                                        timeout=aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)) as resp:
                if resp.status != 200:
                    return None
                text = await resp.text()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, UnicodeDecodeError):
            return None
        samples: dict[str, float] = {}
        try:
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
        except ValueError:
            return None
        return samples

    async def probe(self, base_url: str, timeout_s: float | None = None) -> ProbeResult:
        started = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        try:
            async with self.session.get(base_url + self.path, timeout=timeout) as resp:
                await resp.read()
                elapsed = (time.perf_counter() - started) * 1000
                if resp.status == 200:
                    return ProbeResult(True, elapsed)
                return ProbeResult(False, elapsed, f"HTTP {resp.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return ProbeResult(False, (time.perf_counter() - started) * 1000, type(exc).__name__)
