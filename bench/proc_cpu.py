"""CPU time of processes and their descendants, read from Linux's /proc: what a benchmark charges to each
process under test per request it served."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # the name may hold spaces


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def descendants(roots: list[int]) -> list[int]:
    """`roots` and every live process below them (worker processes a server forked or spawned)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_cpu_seconds(roots: list[int]) -> dict[int, float]:
    """CPU seconds of each process in the trees under `roots`, by pid (a process gone meanwhile is left out)."""
    seconds = {}
    for pid in descendants(roots):
        try:
            seconds[pid] = cpu_seconds(pid)
        except OSError:
            continue
    return seconds


def spent_since(before: dict[int, float], roots: list[int]) -> float:
    """CPU seconds the trees under `roots` spent since `before` (`tree_cpu_seconds`); processes started since
    count from zero."""
    now = tree_cpu_seconds(roots)
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items())
