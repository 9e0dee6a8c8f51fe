"""A finite KV cache in fixed-size blocks with an LRU prefix cache, after vLLM's automatic prefix caching.

Full prompt blocks are identified by a chained hash (a block's hash covers every token before it), so two
prompts share cached blocks exactly as far as they share a prefix. Blocks no sequence references stay
cached and are evicted least-recently-used first when space is needed. Blocks for the partial last prompt
block and for generated tokens are private to the sequence.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


def block_hashes(tokens: list[int], block_size: int) -> list[int]:
    hashes, previous = [], 0
    for start in range(0, len(tokens) - block_size + 1, block_size):
        previous = hash((previous, tuple(tokens[start : start + block_size])))
        hashes.append(previous)
    return hashes


@dataclass
class Allocation:
    hashes: list[int]
    private_blocks: int
    cached_tokens: int


@dataclass
class PrefixCache:
    num_blocks: int
    block_size: int = 16
    _refs: dict[int, int] = field(default_factory=dict)
    _evictable: OrderedDict[int, None] = field(default_factory=OrderedDict)
    _private_in_use: int = 0
    queries: int = 0
    hits: int = 0

    def blocks_needed(self, prompt_len: int, max_new_tokens: int) -> int:
        return -(-(prompt_len + max_new_tokens) // self.block_size)

    @property
    def free_blocks(self) -> int:
        return self.num_blocks - len(self._refs) - self._private_in_use

    @property
    def usage(self) -> float:
        in_use = len(self._refs) - len(self._evictable) + self._private_in_use
        return in_use / self.num_blocks

    def _matched(self, hashes: list[int]) -> int:
        matched = 0
        for h in hashes:
            if h not in self._refs:
                break
            matched += 1
        return matched

    def try_allocate(self, tokens: list[int], max_new_tokens: int) -> Allocation | None:
        """Reserve blocks for the whole sequence (prompt + max_new_tokens), reusing cached prefix blocks.
        Returns None when it does not fit now."""
        hashes = block_hashes(tokens, self.block_size)
        matched = self._matched(hashes)
        total = self.blocks_needed(len(tokens), max_new_tokens)
        new_shared = len(hashes) - matched
        private = total - len(hashes)
        reused_evictable = sum(1 for h in hashes[:matched] if h in self._evictable)
        if new_shared + private > self.free_blocks + len(self._evictable) - reused_evictable:
            return None
        for h in hashes[:matched]:
            if self._refs[h] == 0:
                del self._evictable[h]
            self._refs[h] += 1
        while self.free_blocks < new_shared + private:
            victim, _ = self._evictable.popitem(last=False)
            del self._refs[victim]
        for h in hashes[matched:]:
            self._refs[h] = 1
        self._private_in_use += private
        # The last prompt token is always computed, so a fully cached prompt still prefills one token.
        cached = min(matched * self.block_size, max(len(tokens) - 1, 0))
        self.queries += len(tokens)
        self.hits += cached
        return Allocation(hashes=hashes, private_blocks=private, cached_tokens=cached)

    def release(self, allocation: Allocation) -> None:
        for h in allocation.hashes:
            self._refs[h] -= 1
            if self._refs[h] == 0:
                self._evictable[h] = None
                self._evictable.move_to_end(h)
        self._private_in_use -= allocation.private_blocks
