"""Active probes over HTTP."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: float
    error: str = ""


class Prober:
    def __init__(self, session: aiohttp.ClientSession, path: str, timeout_s: float) -> None:
        self.session, self.path = session, path
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def probe(self, base_url: str) -> ProbeResult:
        started = time.perf_counter()
        try:
            async with self.session.get(base_url + self.path, timeout=self.timeout) as resp:
                await resp.read()
                elapsed = (time.perf_counter() - started) * 1000
                if resp.status == 200:
                    return ProbeResult(True, elapsed)
                return ProbeResult(False, elapsed, f"HTTP {resp.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return ProbeResult(False, (time.perf_counter() - started) * 1000, type(exc).__name__)
