"""One sweep enforcing many deadlines: only the overdue are cancelled, and they can tell why."""

import asyncio
import time

from tmx_gateway.deadlines import Deadlines


async def test_a_sweep_cancels_only_what_is_overdue_and_the_task_can_answer_for_it():
    deadlines = Deadlines(interval_s=60)
    gate = asyncio.Event()
    outcomes: dict[str, str] = {}

    async def reader(name: str, within_s: float) -> None:
        task = asyncio.current_task()
        deadlines.watch(task, within_s)
        try:
            await gate.wait()
            outcomes[name] = "finished"
        except asyncio.CancelledError:
            if not deadlines.expired(task):
                outcomes[name] = "cancelled elsewhere"
                raise
            outcomes[name] = f"timed out (cancelling: {task.cancelling()})"
        finally:
            deadlines.unwatch(task)

    slow, quick, other = (asyncio.create_task(reader(n, s)) for n, s in (("slow", -1.0), ("quick", 3600), ("o", 3600)))
    await asyncio.sleep(0)  # all three are waiting
    assert deadlines.sweep(0.0) == 0  # as of long ago: nothing was due
    assert deadlines.sweep(time.monotonic()) == 1  # now: the one due a second ago
    other.cancel()  # a cancellation that is not the deadline's propagates as usual
    await asyncio.gather(slow, other, return_exceptions=True)
    gate.set()
    await quick
    assert outcomes == {"slow": "timed out (cancelling: 0)", "quick": "finished", "o": "cancelled elsewhere"}
    assert not deadlines._due and not deadlines._expired  # nothing left behind
