"""Commands against a stack that is not there: a one-line error and exit 1, quickly; no traceback, no hang."""

import os
import subprocess
import sys

import pytest

from conftest import free_port


def tmx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tmx_cli.main", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "300"})  # one line per message, however long


def test_audit_tail_fails_fast_when_nats_is_unreachable():
    url = f"nats://127.0.0.1:{free_port()}"
    done = tmx("audit", "tail", "--nats-url", url, "--count", "1")  # it retried forever, printing tracebacks
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"cannot reach NATS at {url}" in done.stderr and "tmx up" in done.stderr


@pytest.mark.parametrize("args, option", [(("status",), "--health-addr"), (("forge", "jobs"), "--registry-addr"),
                                          (("plan", "recommend", "--model", "Llama-3.1-8B"), "--planner-addr")])
def test_a_service_that_is_not_running_is_named_with_a_hint(args, option):
    done = tmx(*args, option, f"127.0.0.1:{free_port()}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "UNAVAILABLE" in done.stderr and "is the stack up?" in done.stderr
