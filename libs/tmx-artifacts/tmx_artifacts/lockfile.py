"""`verified_kernels.json` (every verified kernel with its evidence summary) and the lockfile (the one
kernel per op, dtype and hardware a deployment uses, pinned by content hash).

Both are plain data built from registry records (dicts with id, op, dtype, hardware, content_hash,
config, speedup, job_id, created_at_unix_ms); writing them to disk is the caller's business.
"""

from __future__ import annotations

FORMAT = 1
_FIELDS = ("id", "op", "dtype", "hardware", "content_hash", "config", "speedup", "job_id", "created_at_unix_ms")
_OPTIONAL = ("status", "provenance", "environment")  # carried when the registry record has them


class LockError(LookupError):
    pass


def _key(op: str, dtype: str, hardware: str) -> str:
    return f"{op}/{dtype}/{hardware}"


def export(kernels: list[dict]) -> dict:
    """Every verified kernel, in a stable order (op, dtype, hardware, then best first)."""
    rows = [{**{f: k[f] for f in _FIELDS}, **{f: k[f] for f in _OPTIONAL if f in k}} for k in kernels]
    rows.sort(key=lambda k: (k["op"], k["dtype"], k["hardware"], -k["speedup"], -k["created_at_unix_ms"]))
    return {"format": FORMAT, "kernels": rows}


def lock(resolved: list[dict]) -> dict:
    """Pin the kernels the registry resolved, one per (op, dtype, hardware)."""
    pins = {}
    for k in resolved:
        key = _key(k["op"], k["dtype"], k["hardware"])
        if key in pins and pins[key]["content_hash"] != k["content_hash"]:
            raise LockError(f"two different kernels resolved for {key}")
        pins[key] = {"kernel_id": k["id"], "content_hash": k["content_hash"], "speedup": k["speedup"]}
    return {"format": FORMAT, "kernels": dict(sorted(pins.items()))}


def pinned(lockfile: dict, op: str, dtype: str, hardware: str) -> str:
    """The content hash the lockfile pins for (op, dtype, hardware)."""
    if lockfile.get("format") != FORMAT:
        raise LockError(f"unsupported lockfile format {lockfile.get('format')!r}")
    try:
        return lockfile["kernels"][_key(op, dtype, hardware)]["content_hash"]
    except KeyError:
        raise LockError(f"the lockfile pins no kernel for {_key(op, dtype, hardware)}") from None
