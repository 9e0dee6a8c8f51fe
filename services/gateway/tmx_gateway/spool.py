"""A bounded local spool for events that could not reach NATS. Each line holds the subject, the headers
(so a replay keeps its `Nats-Msg-Id` and JetStream drops anything that did land) and the payload.

Appends are synchronous small writes done by the publisher task, never by a request. When the spool is full
new events are dropped and counted, never blocking the gateway.

With several workers each has its own spool (`worker_spool_path`); a gateway restarted with fewer workers folds
the spools of the workers that are gone into worker 0's (`adopt_orphaned_spools`), so their events are replayed,
not stranded."""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, path: str | Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dropped = 0

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, entries: list[tuple[str, bytes, dict[str, str]]]) -> int:
        """Write entries; returns how many were dropped because the spool is full."""
        lines = [json.dumps({"s": subject, "h": headers, "d": base64.b64encode(data).decode()}) + "\n"
                 for subject, data, headers in entries]
        room = self.max_bytes - self.size
        kept = []
        for line in lines:
            if len(line) > room:
                break
            kept.append(line)
            room -= len(line)
        dropped = len(lines) - len(kept)
        if kept:
            _append_synced(self.path, "".join(kept).encode())
        if dropped:
            self.dropped += dropped
            log.error("event spool full: events dropped", extra={"dropped": dropped, "spool": str(self.path),
                                                                 "max_bytes": self.max_bytes})
        return dropped

    def entries(self) -> Iterator[tuple[str, bytes, dict[str, str]]]:
        if not self.path.exists():
            return
        with open(self.path) as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    yield item["s"], base64.b64decode(item["d"]), item["h"]
                except (ValueError, KeyError):
                    log.error("skipping a corrupt spool line", extra={"spool": str(self.path)})

    def rewrite(self, remaining: list[tuple[str, bytes, dict[str, str]]]) -> None:
        """Replace the spool with what is still unsent (atomically)."""
        if not remaining:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")  # its own: workers' spools differ only in the suffix
        tmp.unlink(missing_ok=True)
        Spool(tmp, 1 << 62).append(remaining)
        os.replace(tmp, self.path)


def worker_spool_path(spool_path: str, index: int) -> str:
    """Worker `index`'s spool: worker 0 keeps the configured one, so a gateway that goes from one worker to several
    keeps replaying what it spooled."""
    return spool_path if index == 0 else f"{spool_path}.w{index}"


def adopt_orphaned_spools(spool_path: str | Path, workers: int) -> int:
    """Move the events of spools left by workers that no longer exist (`<spool_path>.w<i>`, i >= `workers`) into
    worker 0's spool, whatever its size limit (they were accepted already); returns how many lines moved. Call
    before any worker starts, while nothing writes these files. A crash between the append and the unlink spools
    those events twice; the replay keeps their `Nats-Msg-Id`, which JetStream deduplicates."""
    path = Path(spool_path)
    prefix = path.name + ".w"
    moved = 0
    for orphan in sorted(path.parent.glob(prefix + "*")):
        index = orphan.name[len(prefix):]
        if not index.isdigit() or int(index) < workers:
            continue
        data = orphan.read_bytes()
        if data and not data.endswith(b"\n"):
            data += b"\n"  # a torn last line stays one corrupt line (skipped), not glued to the next
        if data:
            _append_synced(path, data)
        orphan.unlink()
        lines = data.count(b"\n")
        moved += lines
        log.warning("adopted the event spool of a worker that no longer runs",
                    extra={"spool": str(orphan), "into": str(path), "lines": lines})
    return moved


def _append_synced(path: Path, data: bytes) -> None:
    """Append `data` and wait until it is on disk: a spooled event was accepted, and must survive a crash."""
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
