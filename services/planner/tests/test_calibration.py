"""The calibration set parses, the shipped calibration reproduces it, and errors are computed right."""

import pytest

from tmx_planner.calibrate import load_rows
from tmx_planner.domain.calibration import Error, errors, fit, summary
from tmx_planner.domain.performance import default_calibration


def test_every_published_row_parses_into_a_deployment():
    rows = {r.id: r for r in load_rows(None)}
    assert set(rows) == {"TMX-1", "TRT-1", "TRT-4", "NIM-1", "NIM-3", "AIC-1", "AIC-4", "AIC-11"}
    tmx = rows["TMX-1"]
    assert (tmx.deployment.engine, tmx.deployment.replicas, tmx.concurrency) == ("vllm", 4, 128)
    assert tmx.ttft_ms == pytest.approx((394 + 461) / 2) and tmx.ttft_is_p95
    assert rows["TRT-1"].concurrency is None and rows["TRT-1"].deployment.precision == "fp8"
    assert rows["NIM-3"].deployment.engine == "trtllm" and rows["AIC-11"].deployment.precision == "bf16"


def test_error_arithmetic():
    e = Error("x", "tpot", predicted=12.0, measured=10.0)
    assert e.ape == pytest.approx(0.2)
    s = summary([Error("a", "ttft", 1.1, 1.0), Error("b", "ttft", 1.5, 1.0), Error("c", "ttft", 0.7, 1.0)])
    assert s["ttft"]["median_ape"] == pytest.approx(0.3) and s["ttft"]["p90_ape"] == pytest.approx(0.5)


def test_the_shipped_calibration_reproduces_the_published_measurements():
    """Guards data/calibration.yaml against drifting from the model: these are the in-sample errors it was
    fitted to (deterministic arithmetic, no timing)."""
    result = summary(errors(load_rows(None), default_calibration()))
    assert result["throughput"]["median_ape"] < 0.10
    assert result["tpot"]["median_ape"] < 0.10
    assert result["ttft"]["median_ape"] < 0.35


def test_fitting_does_not_make_things_worse():
    from tmx_planner.domain.calibration import loss

    rows = load_rows(None)
    start = default_calibration()
    assert loss(rows, fit(rows, start, rounds=1)) <= loss(rows, start)
