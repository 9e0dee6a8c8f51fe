"""The Triton kernel library. Every op is one vertical slice, reached through `get_op(name)`.

The op registry (and torch) loads on first use, so `tmx_kernels.skills` stays light for the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tmx_kernels.registry import OpSpec, as_outputs, clone_inputs, get_op, op_names

__all__ = ["OpSpec", "as_outputs", "clone_inputs", "get_op", "op_names"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tmx_kernels import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'tmx_kernels' has no attribute {name!r}")
