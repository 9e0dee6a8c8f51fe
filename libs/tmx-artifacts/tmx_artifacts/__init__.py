"""Kernel artifacts as the registry stores them and as engines consume them. No torch, no I/O of its own."""

from tmx_artifacts.hashing import content_hash
from tmx_artifacts.loader import IntegrityError, check, from_registry, load
from tmx_artifacts.lockfile import LockError, export, lock, pinned

__all__ = ["IntegrityError", "LockError", "check", "content_hash", "export", "from_registry", "load", "lock", "pinned"]
