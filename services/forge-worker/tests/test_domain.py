import math

import pytest

from tmx_forge.domain.candidates import template_configs
from tmx_forge.domain.promotion import decide


def test_template_configs_start_with_the_default_and_are_deterministic():
    space = {"num_warps": (1, 2, 4), "rows": (1, 2)}
    configs = template_configs(space, {"num_warps": 4, "rows": 1}, 3)
    assert configs[0] == {"num_warps": 4, "rows": 1} and len(configs) == 3
    assert configs == template_configs(space, {"num_warps": 4, "rows": 1}, 3)
    assert len(template_configs(space, {"num_warps": 4, "rows": 1}, 100)) == 6


def test_promotion_needs_geomean_threshold_and_no_slower_shape():
    ok = decide({"a": 1.2, "b": 1.3})
    assert ok.promote and ok.geomean == pytest.approx(math.sqrt(1.2 * 1.3))
    assert not decide({"a": 1.09, "b": 1.09}).promote
    slow = decide({"a": 2.0, "b": 0.95})
    assert not slow.promote and "slower" in slow.reason and slow.geomean > 1.1
    assert not decide({}).promote and not decide({"a": 0.0}).promote


def test_a_speedup_must_be_consistent_across_interleaved_pairs():
    from tmx_forge.domain.promotion import sign_test

    assert sign_test(7, 7) == pytest.approx(1 / 128) and sign_test(6, 7) == pytest.approx(8 / 128)
    assert decide({"a": 1.5}, wins={"a": (7, 7)}).promote
    noisy = decide({"a": 1.5}, wins={"a": (6, 7)})  # p = 0.0625: a median noise could have produced
    assert not noisy.promote and "6 of 7" in noisy.reason and noisy.geomean == pytest.approx(1.5)
    assert not decide({"a": 1.5, "b": 1.4}, wins={"a": (7, 7), "b": (3, 7)}).promote
