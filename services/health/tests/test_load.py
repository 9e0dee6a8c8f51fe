import pytest

from tmx_health.domain.load import engine_load

VLLM = {"vllm:num_requests_running": 3.0, "vllm:num_requests_waiting": 1.0, "vllm:kv_cache_usage_perc": 0.25,
        "vllm:prefix_cache_queries_total": 1000.0, "vllm:prefix_cache_hits_total": 400.0}


def test_vllm_names_and_the_hit_rate_between_scrapes():
    first = engine_load(VLLM)
    assert (first.engine, first.running, first.waiting, first.kv_cache_usage) == ("vllm", 3, 1, 0.25)
    assert first.prefix_cache_hit_rate == pytest.approx(0.4)
    later = engine_load({**VLLM, "vllm:prefix_cache_queries_total": 1500.0, "vllm:prefix_cache_hits_total": 850.0},
                        first)
    assert later.prefix_cache_hit_rate == pytest.approx(450 / 500)  # since the last scrape, not all time
    idle = engine_load({**VLLM, "vllm:prefix_cache_queries_total": 1500.0, "vllm:prefix_cache_hits_total": 850.0},
                       later)
    assert idle.prefix_cache_hit_rate == -1.0  # no new queries: unknown, not zero


def test_older_vllm_and_sglang_names():
    old = engine_load({"vllm:num_requests_running": 1.0, "vllm:gpu_cache_usage_perc": 0.5})
    assert old.kv_cache_usage == 0.5 and old.prefix_cache_hit_rate == -1.0
    sg = engine_load({"sglang:num_running_reqs": 7.0, "sglang:num_queue_reqs": 2.0, "sglang:token_usage": 0.6,
                      "sglang:cache_hit_rate": 0.3})
    assert (sg.engine, sg.running, sg.waiting, sg.kv_cache_usage, sg.prefix_cache_hit_rate) == \
        ("sglang", 7, 2, 0.6, 0.3)


def test_an_engine_without_known_metrics_has_no_load():
    assert engine_load({"process_cpu_seconds_total": 3.0}) is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_a_value_that_is_not_a_count_is_not_reported(value):
    """A NaN or infinite gauge would reach every gateway's routing scores; a load without it is no load."""
    assert engine_load({**VLLM, "vllm:num_requests_running": value}) is None
    partial = engine_load({**VLLM, "vllm:kv_cache_usage_perc": value})
    assert (partial.running, partial.kv_cache_usage) == (3, 0.0)
