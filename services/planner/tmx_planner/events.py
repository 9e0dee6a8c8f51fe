"""NATS adapter of the planner: the gateways' RequestOutcome events feed the fleet learner."""

from __future__ import annotations

from tensormux.events.v1 import events_pb2
from tmx_eventbus import EventBus, subjects
from tmx_eventbus.streams import TMX_SIGNAL, ConsumerDecl
from tmx_planner.domain.fleet_learning import FleetLearner, Outcome

PLANNER_SIGNALS = ConsumerDecl(stream=TMX_SIGNAL.name, durable="planner-signals", filter_subject=subjects.ALL_SIGNAL,
                               ack_wait_s=30.0, max_deliver=3, backoff_s=())


class OutcomeFeed:
    def __init__(self, bus: EventBus, learner: FleetLearner) -> None:
        self.bus, self.learner = bus, learner

    async def run(self) -> None:
        await self.bus.consume_rows(PLANNER_SIGNALS, events_pb2.RequestOutcome, self._on_outcomes)

    async def _on_outcomes(self, outcomes: list) -> None:
        observe, declared = self.learner.observe, self.learner.declared
        for o in outcomes:
            if o.backend_id in declared:  # the learner ignores the rest: build nothing for them
                observe(o.backend_id, Outcome(at_ms=o.occurred_at_unix_ms, latency_ms=o.latency_ms,
                                              ttft_ms=o.ttft_ms, prompt_tokens=o.prompt_tokens,
                                              completion_tokens=o.completion_tokens, ok=200 <= o.http_status < 300))
