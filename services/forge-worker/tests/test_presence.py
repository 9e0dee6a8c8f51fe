"""A forge worker's record in the workers bucket: there while it runs, gone when it stops."""

import asyncio

from nats.js.errors import KeyNotFoundError

from tmx_eventbus import EventBus, subjects
from tmx_forge.presence import describe, keep_present
from tmx_forge.settings import Settings
from tmx_kernels import op_names


def test_a_worker_describes_the_library_ops_and_its_generators():
    plain = describe(Settings(worker_id="w1", target="cpu"))
    with_agent = describe(Settings(worker_id="w2", agent_base_url="http://127.0.0.1:8080/v1", agent_model="m"))
    assert (plain.worker_id, plain.target, list(plain.ops)) == ("w1", "cpu", op_names())
    assert list(plain.generators) == ["template", "inductor", "file"] and plain.torch and plain.triton
    assert list(with_agent.generators) == ["template", "inductor", "file", "agent"]


async def test_the_record_is_kept_while_the_worker_runs_and_deleted_when_it_stops(nats_url, tmx_async_wait):
    bus = await EventBus.connect(nats_url, name="test")
    await bus.provision()
    kv = await bus.forge_workers_kv()
    key = subjects.forge_worker_key("cpu", "w1")
    record = describe(Settings(worker_id="w1", target="cpu"))
    seen: list[int] = []

    async def put_again() -> bool:
        try:
            stored = type(record).FromString((await kv.get(key)).value)
        except KeyNotFoundError:
            return False
        if not seen or stored.seen_at_unix_ms != seen[-1]:
            seen.append(stored.seen_at_unix_ms)
        return len(seen) >= 2

    present = asyncio.create_task(keep_present(bus, record, every_s=0.05))
    try:
        await tmx_async_wait(put_again, 10, what="the record put twice")
        stored = type(record).FromString((await kv.get(key)).value)
    finally:
        present.cancel()
        await asyncio.gather(present, return_exceptions=True)

    async def gone() -> bool:
        try:
            await kv.get(key)
        except KeyNotFoundError:
            return True
        return False

    await tmx_async_wait(gone, 10, what="the record deleted")
    await bus.close()
    assert list(stored.ops) == op_names() and stored.started_at_unix_ms <= seen[0] < seen[1]
