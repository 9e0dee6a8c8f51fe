"""Watching for a client that leaves: the cancellation logic on its own, with a scripted ASGI `receive`."""

import asyncio

import pytest

from tmx_gateway.disconnect import WATCH_AFTER_S, cancelled_if_client_leaves


async def never_called():
    raise AssertionError("a quick answer must not start a watcher")


async def test_quick_work_returns_its_result_without_a_watcher():
    async def work():
        return "answer"

    assert await cancelled_if_client_leaves(never_called, work()) == (False, "answer")


async def test_slow_work_is_cancelled_when_the_client_leaves():
    left = asyncio.Event()
    cancelled = asyncio.Event()

    async def receive():
        await left.wait()
        return {"type": "http.disconnect"}

    async def work():
        try:
            await asyncio.Event().wait()  # an upstream answer that never comes
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loop = asyncio.get_running_loop()
    loop.call_later(WATCH_AFTER_S * 2, left.set)  # the client leaves after the watcher has started
    async with asyncio.timeout(5):  # in this task (wait_for would run it in another), so the check below is real
        gone, result = await cancelled_if_client_leaves(receive, work())
    assert (gone, result) == (True, None) and cancelled.is_set()
    assert asyncio.current_task().cancelling() == 0  # the task's own cancel was taken back: it goes on


async def test_a_cancellation_from_elsewhere_still_propagates():
    async def receive():
        await asyncio.Event().wait()  # the client stays

    async def work():
        await asyncio.Event().wait()

    task = asyncio.ensure_future(cancelled_if_client_leaves(receive, work()))
    await asyncio.sleep(0)  # let it start (one loop turn, not a timed wait)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
