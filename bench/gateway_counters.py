"""Reading a gateway's prefix-routing counters out of its /metrics text, for the benches that report them."""

from __future__ import annotations

import re


def prefix_counters(metrics_text: str) -> dict[str, float]:
    """prefix_aware's decisions by the rule that made them (`decided_<kind>`) and its predicted against the
    engines' reported cache hits (`predicted_<predicted>_<actual>`, each hit or miss)."""
    out: dict[str, float] = {}
    for kind, value in re.findall(r'^tmx_gateway_routing_decisions_total{kind="(\w+)",strategy="prefix_aware"} (\S+)$',
                                  metrics_text, re.M):
        out[f"decided_{kind}"] = float(value)
    for outcome, value in re.findall(r'^tmx_gateway_prefix_predictions_total{outcome="(\w+)"} (\S+)$', metrics_text,
                                     re.M):
        out[f"predicted_{outcome}"] = float(value)
    return out
