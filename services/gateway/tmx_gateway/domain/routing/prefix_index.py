"""Which prompt prefixes each backend has likely cached: chained hashes of fixed-size blocks of the rendered
prompt, an LRU per backend with a bounded number of blocks."""

from __future__ import annotations

from collections import OrderedDict

BLOCK_CHARS = 128  # ~32 tokens of English text
CHARS_PER_TOKEN = 4


def block_hashes(text: str, block_chars: int = BLOCK_CHARS) -> list[int]:
    """One hash per full block; each covers everything before it, so equal hashes mean equal prefixes."""
    hashes, previous = [], 0
    for start in range(0, len(text) - block_chars + 1, block_chars):
        previous = hash((previous, text[start:start + block_chars]))
        hashes.append(previous)
    return hashes


class PrefixIndex:
    def __init__(self, max_blocks_per_backend: int = 200_000) -> None:
        self.max_blocks = max_blocks_per_backend
        self._blocks: dict[str, OrderedDict[int, None]] = {}

    def matched_blocks(self, backend_id: str, hashes: list[int]) -> int:
        blocks = self._blocks.get(backend_id)
        if not blocks:
            return 0
        matched = 0
        for h in hashes:
            if h not in blocks:
                break
            matched += 1
        return matched

    def record(self, backend_id: str, hashes: list[int]) -> None:
        blocks = self._blocks.setdefault(backend_id, OrderedDict())
        for h in hashes:
            if h in blocks:
                blocks.move_to_end(h)
            else:
                blocks[h] = None
        while len(blocks) > self.max_blocks:
            blocks.popitem(last=False)

    def size(self, backend_id: str) -> int:
        return len(self._blocks.get(backend_id, ()))

    def forget(self, backend_id: str) -> None:
        self._blocks.pop(backend_id, None)
