"""`tmx up` in the foreground: Ctrl-C, SIGTERM and SIGHUP (the terminal closed) each stop every service, and so
does a service exiting on its own. The stack here is a stand-in that records `stop()`: what is under test is the
lifecycle around it (the real stack's start and stop are covered in tests/e2e/test_stack.py)."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tmx_cli.main import run_until_stopped
from tmx_cli.stack import Child

FOREGROUND = textwrap.dedent("""
    from tmx_cli.main import run_until_stopped

    class Stack:
        watched = False

        @property
        def children(self):
            if not self.watched:  # the handlers are in place once the loop looks at the children
                self.watched = True
                print("watching", flush=True)
            return []

        def stop(self):
            print("services stopped", flush=True)

    run_until_stopped(Stack(), poll_s=0.01)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_each_stop_signal_stops_every_service_and_exits_cleanly(sig):
    proc = subprocess.Popen([sys.executable, "-c", FOREGROUND], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "watching\n"
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "services stopped" in out


class StackWithOneService:
    def __init__(self, tmp_path: Path) -> None:
        exits = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        self.children = [Child("registry", exits, tmp_path / "registry.log")]
        self.stopped = 0

    def stop(self) -> None:
        self.stopped += 1


def test_a_service_that_exits_stops_the_rest_and_the_signal_handlers_are_restored(tmp_path, capsys):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    stack = StackWithOneService(tmp_path)
    stack.children[0].proc.wait(30)
    run_until_stopped(stack, poll_s=0.01)
    assert stack.stopped == 1
    assert "registry exited (3)" in capsys.readouterr().out
    assert {sig: signal.getsignal(sig) for sig in before} == before
