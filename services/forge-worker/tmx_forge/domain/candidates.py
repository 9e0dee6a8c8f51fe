"""Template generator: configurations of an op's kernel drawn from its search space."""

from __future__ import annotations

import itertools


def template_configs(search_space: dict[str, tuple], default: dict, limit: int) -> list[dict]:
    """The op's default first, then the rest of the grid in a fixed order, at most `limit` in all."""
    names = sorted(search_space)
    grid = [dict(zip(names, values)) for values in itertools.product(*(search_space[n] for n in names))]
    ordered = [default] + [c for c in grid if c != default]
    return ordered[: max(limit, 0)]
