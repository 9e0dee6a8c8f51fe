"""Load a resolved kernel only after its content hash checks out.

The artifact's source defines `launch(*inputs, **config)`; `load` returns that function with the recorded
configuration bound. A kernel whose source or configuration differs by one byte from what the registry
verified is refused before any of its code runs.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable

from tmx_artifacts.hashing import content_hash
from tmx_artifacts.lockfile import LockError, pinned


class IntegrityError(ValueError):
    pass


def load(source: str, config: dict, expected_hash: str, name: str = "tmx_kernel_artifact") -> Callable:
    actual = content_hash(source, config)
    if actual != expected_hash:
        raise IntegrityError(f"content hash {actual} does not match the expected {expected_hash}: refusing to load")
    module = types.ModuleType(name)
    exec(compile(source, f"<{name} {expected_hash[:19]}>", "exec"), module.__dict__)  # noqa: S102 - hash-checked
    launch = getattr(module, "launch", None)
    if not callable(launch):
        raise IntegrityError("the artifact defines no launch(*inputs, **config)")
    return lambda *inputs: launch(*inputs, **config)


def check(kernel, lockfile: dict | None = None) -> dict:
    """Check a kernel as ResolveKernel returned it (op, dtype, hardware, source, config_json, content_hash)
    without running any of it; returns its configuration.

    With a lockfile the expected hash is the pinned one, so neither a changed registry record nor a tampered
    response can swap the code; without one it is the record's own hash (guards storage and transit)."""
    expected = kernel.content_hash
    if lockfile is not None:
        expected = pinned(lockfile, kernel.op, kernel.dtype, kernel.hardware)
        if kernel.content_hash != expected:
            raise LockError(f"the registry resolved {kernel.content_hash} for {kernel.op}/{kernel.dtype}/"
                            f"{kernel.hardware}; the lockfile pins {expected}")
    config = json.loads(kernel.config_json or "{}")
    actual = content_hash(kernel.source, config)
    if actual != expected:
        raise IntegrityError(f"content hash {actual} does not match the expected {expected}: refusing to load")
    return config


def from_registry(kernel, lockfile: dict | None = None) -> Callable:
    """check(), then load: the kernel's launch with its recorded configuration bound."""
    config = check(kernel, lockfile)
    return load(kernel.source, config, content_hash(kernel.source, config), name=f"tmx_{kernel.op}")
