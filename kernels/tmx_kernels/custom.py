"""Custom ops: a job's own reference, for an op the library does not have.

A reference module defines
    make_inputs(shape, dtype, seed, device) -> tuple   # the inputs, deterministic in seed
    reference(*inputs) -> tensor | tuple               # the truth, at high precision, outputs in the input dtype
    baseline(*inputs) -> tensor | tuple                # what is run today (eager PyTorch): what a kernel must beat
and may define
    TOLERANCES = {"float32": (atol, rtol), ...}        # default: DEFAULT_TOLERANCES
    TEST_SHAPES = [(3, 33), ...]                       # odd shapes the verifier adds (default: none)
    MUTATES = (2,)                                     # inputs written in place (default: none)
    bytes_moved(shape, dtype) -> int                   # default: the bytes of the inputs and the outputs

`op_from_source` executes the module: only a sandboxed process may call it (the forge's oracle and baseline
processes do); the worker itself never runs a job's reference, it asks the sandbox.
"""

from __future__ import annotations

import types

import torch

from tmx_kernels.registry import OpSpec, Tolerance, as_outputs

DEFAULT_TOLERANCES = {"float32": (1e-5, 1e-5), "float16": (2e-3, 2e-3), "bfloat16": (2e-2, 2e-2)}
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class CustomOpError(ValueError):
    pass


def tolerances_from(declared: dict | None) -> dict[torch.dtype, Tolerance]:
    table = {}
    for name, pair in (declared or DEFAULT_TOLERANCES).items():
        if name not in _DTYPES:
            raise CustomOpError(f"TOLERANCES names an unknown dtype {name!r}; use {', '.join(_DTYPES)}")
        try:
            atol, rtol = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise CustomOpError(f"TOLERANCES[{name!r}] must be (atol, rtol)") from None
        if not (0 <= atol < 1 and 0 <= rtol < 1):
            raise CustomOpError(f"TOLERANCES[{name!r}] must lie within [0, 1)")
        table[_DTYPES[name]] = Tolerance(atol, rtol, "the job's own tolerance")
    return table


def op_from_source(name: str, source: str) -> OpSpec:
    """Build an OpSpec from a reference module's source. Runs the module: sandboxed processes only."""
    module = types.ModuleType(f"tmx_custom_{name}")
    try:
        exec(compile(source, f"<reference of {name}>", "exec"), module.__dict__)  # noqa: S102 - sandboxed caller
    except SyntaxError as exc:
        raise CustomOpError(f"the reference does not parse: line {exc.lineno}: {exc.msg}") from None
    for required in ("make_inputs", "reference", "baseline"):  # a high-precision reference is no fair baseline
        if not callable(getattr(module, required, None)):
            raise CustomOpError(f"the reference module must define {required}()")
    reference, baseline = module.reference, module.baseline

    def bytes_moved(shape, dtype) -> int:
        if callable(getattr(module, "bytes_moved", None)):
            return int(module.bytes_moved(shape, dtype))
        inputs = module.make_inputs(shape, dtype, 0, "cpu")
        tensors = [*inputs, *as_outputs(reference(*inputs))]
        return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))

    return OpSpec(
        name=name, module=module, launch=baseline, reference=reference, baseline=baseline,
        make_inputs=module.make_inputs, tolerances=tolerances_from(getattr(module, "TOLERANCES", None)),
        bytes_moved=bytes_moved, flops=lambda shape: 0,
        test_shapes=tuple(tuple(int(d) for d in s) for s in getattr(module, "TEST_SHAPES", ())),
        mutates=tuple(int(i) for i in getattr(module, "MUTATES", ())),
    )
