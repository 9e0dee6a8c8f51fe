"""Candidate generators. Each yields Candidates: module source defining launch(*inputs, **config), plus the
config to call it with. Sources built here from the library's own code are trusted (no static check); the
sandbox, the correctness checks and the timing rules apply to every candidate alike."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    source: str  # a module defining launch(*inputs, **config)
    config: dict = field(default_factory=dict)
    trusted: bool = False  # generated from the library's own templates: skips the static check only
    label: str = ""
    triton: bool = False  # set by generators that know; untrusted sources are judged by their imports
    artifact: str = ""  # the code a promotion publishes when it is not `source` (a template's kernel module)

    @property
    def published_source(self) -> str:
        return self.artifact or self.source

    @property
    def is_triton(self) -> bool:
        return self.triton or "triton" in self.source

TRITON_TEMPLATE = '''\
from tmx_kernels import get_op

_op = get_op({op!r})


def launch(*inputs, **config):
    return _op.launch(*inputs, **config)
'''

INDUCTOR_TEMPLATE = '''\
import torch
from tmx_kernels import get_op

_fn = torch.compile(get_op({op!r}).baseline, dynamic=False, options={options!r})


def launch(*inputs, **config):
    return _fn(*inputs)
'''

# inductor settings worth trying against a default torch.compile baseline on CPU
INDUCTOR_VARIANTS = (
    {},
    {"max_autotune": True},
    {"coordinate_descent_tuning": True},
    {"epilogue_fusion": False},
)


def template_configs(search_space: dict[str, tuple], default: dict, limit: int) -> list[dict]:
    """The op's default first, then the rest of the grid in a fixed order, at most `limit` in all."""
    names = sorted(search_space)
    grid = [dict(zip(names, values)) for values in itertools.product(*(search_space[n] for n in names))]
    ordered = [default] + [c for c in grid if c != default]
    return ordered[: max(limit, 0)]


def template_candidates(op: str, search_space: dict[str, tuple], default: dict, limit: int,
                        kernel_source: str = "") -> list[Candidate]:
    """kernel_source: the op module's code, published with a winning configuration."""
    source = TRITON_TEMPLATE.format(op=op)
    return [Candidate(source, config, trusted=True, label=f"triton {config}", triton=True, artifact=kernel_source)
            for config in template_configs(search_space, default, limit)]


def inductor_candidates(op: str, limit: int) -> list[Candidate]:
    return [Candidate(INDUCTOR_TEMPLATE.format(op=op, options=options), {}, trusted=True,
                      label=f"torch.compile {options or 'default'}")
            for options in INDUCTOR_VARIANTS[: max(limit, 0)]]


class ListProposer:
    """A fixed list of candidates, proposed in order whatever the verdicts (template and inductor)."""

    def __init__(self, candidates: list[Candidate]) -> None:
        self._pending = list(candidates)

    async def propose(self, last_verdict=None) -> Candidate | None:
        return self._pending.pop(0) if self._pending else None
