"""`tmx plan recommend` against a real planner: what it prints when no plan is left, and options it refuses."""

import asyncio
import os
import sys

import grpc
import pytest

from tmx_planner.app import serve
from tmx_planner.settings import Settings


@pytest.fixture
async def planner_addr():
    from conftest import free_port

    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(Settings(port=port), stop))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
    yield f"127.0.0.1:{port}"
    stop.set()
    await asyncio.wait_for(task, 10)


async def tmx(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tmx_cli.main", *args,
                                                env={**os.environ, "COLUMNS": "200"},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_with_no_plan_left_it_says_why_and_what_the_best_could_do(planner_addr):
    code, out, _ = await tmx("plan", "recommend", "--model", "Llama-3.1-70B", "--concurrency", "64",
                             "--ttft-p95-ms", "1", "--planner-addr", planner_addr)
    assert code == 0 and "0 plans" in out
    assert "misses TTFT p95" in out and "does not fit in VRAM" in out
    lowest = next(line for line in out.splitlines() if "no plan meets every constraint" in line)
    assert "lowest TTFT p95" in lowest and "tok/s" in lowest, out


@pytest.mark.parametrize("option, value", [("--concurrency", "-5"), ("--ttft-p95-ms", "0"), ("--ttft-p95-ms", "nan"),
                                           ("--budget-per-hour", "-1"), ("--limit", "0"), ("--isl", "4294967296")])
async def test_an_option_out_of_range_is_a_usage_error_not_a_traceback(option, value):
    code, out, err = await tmx("plan", "recommend", "--model", "Llama-3.1-70B", option, value,
                               "--planner-addr", "127.0.0.1:9")  # never reached
    assert code == 2 and "Invalid value" in err and "Traceback" not in err + out, err
