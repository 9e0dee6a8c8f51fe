"""The Triton kernel library. Every op is one vertical slice, reached through `get_op(name)`."""

from tmx_kernels.registry import OpSpec, get_op, op_names

__all__ = ["OpSpec", "get_op", "op_names"]
