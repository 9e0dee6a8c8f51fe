"""The identity of a kernel artifact: its source and the configuration it is launched with."""

from __future__ import annotations

import hashlib
import json


def content_hash(source: str, config: dict) -> str:
    """sha256 over the source and the canonical JSON (sorted keys, no spaces) of its launch configuration."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(source.encode() + b"\0" + canonical.encode()).hexdigest()
