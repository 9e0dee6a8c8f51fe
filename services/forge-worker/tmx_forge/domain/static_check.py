"""Static checks on an untrusted candidate's syntax tree, before it is ever run.

A candidate is a Python module that defines `launch(*inputs, **config)`. It may import only the numeric
libraries a kernel needs, and may not reach the interpreter's machinery (dunder attributes, eval/exec,
open, globals) through which it could read the harness, the reference or the verdict channel. The sandbox's
runtime guard (no network, no writes outside the scratch directory, no processes) backs this up: neither
is trusted alone.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

ALLOWED_IMPORTS = {"torch", "triton", "math", "functools", "typing", "dataclasses", "itertools", "operator",
                   "__future__"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars", "getattr",
                   "setattr", "delattr", "breakpoint", "input", "memoryview", "help"}
# anywhere: raw memory and the compiler's internals
FORBIDDEN_ATTRIBUTES = {"_C", "_dynamo", "_inductor", "untyped_storage", "storage", "data_ptr", "set_",
                        "from_file", "frombuffer", "from_numpy"}
# directly under torch (torch.X or torch.cuda.X): files, the RNG, clocks and streams, foreign code, and the
# thread count every side is timed with
TORCH_FORBIDDEN = {"load", "save", "manual_seed", "seed", "set_rng_state", "get_rng_state", "Event", "Stream",
                   "synchronize", "ops", "library", "hub", "utils", "testing", "autograd", "cuda_graph", "graphs",
                   "set_num_threads", "set_num_interop_threads"}
ALLOWED_DUNDERS = {"__init__", "__name__", "__future__"}


@dataclass(frozen=True)
class Violation:
    line: int
    what: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.what}"


def _under_torch(node: ast.expr) -> bool:
    """torch or torch.cuda as the object an attribute is read from."""
    if isinstance(node, ast.Name):
        return node.id == "torch"
    return isinstance(node, ast.Attribute) and node.attr == "cuda" and _under_torch(node.value)


def check(source: str) -> list[Violation]:
    """Every violation in the source, in line order; an empty list means it may run."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [Violation(exc.lineno or 0, f"syntax error: {exc.msg}")]
    found: list[Violation] = []
    defines_launch = False
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in ALLOWED_IMPORTS:
                    found.append(Violation(line, f"forbidden import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "").split(".")[0] not in ALLOWED_IMPORTS:
                found.append(Violation(line, f"forbidden import from {node.module or '.'}"))
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_CALLS | {"__builtins__"}:
            found.append(Violation(line, f"forbidden name {node.id}"))
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__") and node.attr not in ALLOWED_DUNDERS:
                found.append(Violation(line, f"forbidden attribute {node.attr}"))
            elif node.attr in FORBIDDEN_ATTRIBUTES or (node.attr in TORCH_FORBIDDEN and _under_torch(node.value)):
                found.append(Violation(line, f"forbidden attribute {node.attr}"))
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            found.append(Violation(line, "global state (global/nonlocal) is not allowed: calls must not share state"))
        elif isinstance(node, ast.FunctionDef) and node.name == "launch" and node in tree.body:
            defines_launch = True
    if not defines_launch:
        found.append(Violation(0, "the candidate must define a top-level function launch(*inputs, **config)"))
    return sorted(found, key=lambda v: v.line)
