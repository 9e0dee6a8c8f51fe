"""The NATS side of the workers' shared view (`peering.PeerLink`), over a real NATS: notes carry a worker's load
to its peers; a note that is not JSON is dropped without stopping the link, and one that a peer wrote with the
standard library's JSON (NaN where a number was undefined, as gateways before orjson wrote them) is still read."""

import asyncio
import json

from tmx_config import BackendSpec, FleetFile
from tmx_eventbus import EventBus, subjects
from tmx_gateway.domain.fleet import Attempt, FleetView
from tmx_gateway.domain.peers import PeerView
from tmx_gateway.domain.rate_limits import RateLimiter
from tmx_gateway.domain.routing import Router
from tmx_gateway.peering import PeerLink


def fleet() -> FleetView:
    view = FleetView()
    view.apply_fleet(FleetFile(backends=tuple(BackendSpec(id=i, url=f"http://{i}", models=("m",)) for i in "ab")))
    return view


async def test_notes_travel_between_links_and_a_malformed_or_standard_library_note_does_not_stop_them(
        nats_url, tmx_async_wait):
    buses = [await EventBus.connect(nats_url, name=f"peer-{i}") for i in range(3)]
    mine, theirs, router = fleet(), fleet(), Router()
    links = [PeerLink(bus, "gw", PeerView(name, silent_after_s=60.0), view, lambda: router, RateLimiter(), 0.01)
             for bus, name, view in ((buses[0], "w0", mine), (buses[1], "w1", theirs))]
    tasks = [asyncio.create_task(link.run()) for link in links]
    try:
        Attempt(theirs.backends["a"], 300, 40)
        await tmx_async_wait(lambda: mine.backends["a"].inflight == 1, what="w1's load heard by w0")
        subject = subjects.gateway_peers("gw")
        await buses[2].nc.publish(subject, b'{"from": "w8", "load"')
        older = {"from": "w9", "domain": links[0].view.hash_domain, "load": {"b": [2, 20, 0, 8]},
                 "costs": {"a": [[0, float("nan"), 1.0]]}}
        await buses[2].nc.publish(subject, json.dumps(older).encode())  # the standard library writes NaN
        await tmx_async_wait(lambda: mine.backends["b"].inflight == 2, what="the older peer's load heard by w0")
        assert mine.backends["b"].inflight_output_tokens == 8
        assert mine.backends["a"].costs.samples == 0  # its undefined observation is not learned
        Attempt(theirs.backends["a"], 300, 40)  # w1 still heard after both
        await tmx_async_wait(lambda: mine.backends["a"].inflight == 2, what="w1's next note heard by w0")
        assert links[0].view.peers == ["w1", "w9"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bus in buses:
            await bus.close()
