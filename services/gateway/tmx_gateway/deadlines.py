"""Deadlines for many awaits at once, enforced by one periodic sweep instead of a timer per request.

A request body must arrive within a time limit, or a client that sends headers and then trickles its body (or
none) holds a request open forever. `asyncio.timeout` around the read costs a timer per request, armed and
cancelled: 5 us on the gateway's path (48.0 -> 53.9 us a JSON request in bench/gateway_path_cost.py, Xeon), a
tenth of its own cost, for a limit that almost never fires. Here a request registers its task with a due time
(a dict entry) and one task sweeps them every `interval_s`, cancelling the overdue: a deadline is kept to
within one interval, which is plenty for a limit of seconds."""

from __future__ import annotations

import asyncio
import time


class Deadlines:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._due: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()

    def watch(self, task: asyncio.Task, within_s: float) -> None:
        self._due[task] = time.monotonic() + within_s

    def unwatch(self, task: asyncio.Task) -> None:
        self._due.pop(task, None)

    def expired(self, task: asyncio.Task) -> bool:
        """Whether `task` was cancelled by its deadline (call on its CancelledError). If so, the cancellation is
        withdrawn (`uncancel`), so the task can answer for it instead of unwinding."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def sweep(self, now: float) -> int:
        """Cancel every watched task past its due time; how many."""
        overdue = [task for task, due in self._due.items() if due <= now]
        for task in overdue:
            del self._due[task]
            self._expired.add(task)
            task.cancel()
        return len(overdue)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.sweep(time.monotonic())
