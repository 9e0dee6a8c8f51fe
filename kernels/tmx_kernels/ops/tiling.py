"""Shared tiling pieces of the matmul kernels (and their search spaces)."""

from __future__ import annotations

import triton
import triton.language as tl

# the knobs every tiled matmul exposes to a search, and the default it starts from
MATMUL_SEARCH = {"block_m": (16, 32, 64, 128), "block_n": (32, 64, 128, 256), "block_k": (32, 64, 128),
                 "group_m": (1, 4, 8), "num_warps": (4, 8), "num_stages": (2, 3, 4, 5)}
MATMUL_DEFAULT = {"block_m": 64, "block_n": 64, "block_k": 64, "group_m": 8, "num_warps": 4, "num_stages": 3}
# the knobs of the row-wise norm backwards (one row per iteration, dw partials per program)
NORM_BACKWARD_SEARCH = {"num_warps": (1, 2, 4, 8, 16), "rows_per_program": (1, 2, 4, 8, 16)}
NORM_BACKWARD_DEFAULT = {"num_warps": 4, "rows_per_program": 4}
NORM_BENCH_SHAPES = ((4096, 4096), (16384, 8192), (65536, 4096))
MAX_ROW_BLOCK = 65536  # kernels that keep a whole row in registers


def row_block(n_cols: int) -> int:
    """The power-of-two tile that holds a whole row, or a clear error when a row is too long for one."""
    block = triton.next_power_of_2(n_cols)
    if block > MAX_ROW_BLOCK:
        raise ValueError(f"rows longer than {MAX_ROW_BLOCK} elements are not supported")
    return block


@triton.jit
def grouped_tile(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """(row tile, column tile) of program `pid` in grouped order: GROUP_M row tiles walk one band of columns
    together, so the B tiles they share stay in L2."""
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_M * tiles_n
    first_m = (pid // per_group) * GROUP_M
    group_rows = tl.minimum(tiles_m - first_m, GROUP_M)
    return first_m + (pid % per_group) % group_rows, (pid % per_group) // group_rows
