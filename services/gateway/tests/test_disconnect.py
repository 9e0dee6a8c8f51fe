"""Watching for a client that leaves, and the streamed response that does it: on their own, with a scripted ASGI
`receive` and a recording `send`."""

import asyncio

import pytest

from tmx_gateway.disconnect import WATCH_AFTER_S, FinalChunk, RelayedStream, cancelled_if_client_leaves


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


async def _sent(chunks) -> tuple[list[dict], bool]:
    """The ASGI messages a RelayedStream of `chunks` sends, and whether it closed its iterator."""
    closed = False

    async def body():
        nonlocal closed
        try:
            for chunk in chunks:
                yield chunk
        finally:
            closed = True

    messages = []

    async def send(message):
        messages.append(message)

    await RelayedStream(body(), headers={"x-tmx-backend": "b1"})(
        {"type": "http"}, never_called, send)
    return messages, closed


async def test_a_relayed_stream_sends_its_chunks_then_its_end():
    messages, closed = await _sent([b"data: 1\n\n", b"data: 2\n\n"])
    assert messages[0] == {"type": "http.response.start", "status": 200, "headers": [
        (b"x-tmx-backend", b"b1"), (b"content-type", b"text/event-stream; charset=utf-8")]}
    assert [(m["body"], m["more_body"]) for m in messages[1:]] == [
        (b"data: 1\n\n", True), (b"data: 2\n\n", True), (b"", False)]
    assert closed


async def test_a_final_chunk_goes_out_with_the_end_of_the_response():
    """One message fewer, so one write (a syscall) fewer for the server per stream."""
    messages, closed = await _sent([b"data: 1\n\n", FinalChunk(b"data: [DONE]\n\n")])
    assert [(m["body"], m["more_body"]) for m in messages[1:]] == [
        (b"data: 1\n\n", True), (b"data: [DONE]\n\n", False)]
    assert closed
