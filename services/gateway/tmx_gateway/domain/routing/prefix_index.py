"""Which prompt prefixes each backend has likely cached: chained hashes of fixed-size blocks of the rendered
prompt, an LRU per backend with a bounded number of blocks.

The hashes are XXH3 (64 bits, each block's seeded with the previous hash), the same in every process and on
every host, so gateways that share their routing view (`domain.peers`) can tell each other what they routed: a
peer's block hash means the same prefix here. Python's `hash()` differs per process (its secret is random), and
is slower: 7.1 against 5.0 us for a 4 KiB prompt; BLAKE2b took 23 us."""

from __future__ import annotations

import math
from collections import OrderedDict

from xxhash import xxh3_64_intdigest

BLOCK_CHARS = 128  # block size in bytes of the UTF-8 prompt: ~32 tokens of English text
CHARS_PER_TOKEN = 4
HASH_DOMAIN = f"xxh3-64/{BLOCK_CHARS}"  # gateways exchange block hashes only within one domain


def block_hashes(text: str, block_chars: int = BLOCK_CHARS) -> list[int]:
    """One hash per full block; each covers everything before it (the previous hash seeds the next), so equal
    hashes mean equal prefixes."""
    data = text.encode()
    hashes, previous = [], 0
    for start in range(0, len(data) - block_chars + 1, block_chars):
        previous = xxh3_64_intdigest(data[start:start + block_chars], previous)
        hashes.append(previous)
    return hashes


class PrefixIndex:
    """Per backend, the blocks routed there, least recently used first, each stamped with how many blocks had been
    routed there by the end of its last use: its age is how many blocks (new or cached) the backend has been sent
    since. At most `max_blocks_per_backend` are kept per backend.

    An engine keeps far fewer than that (a GPU's KV cache; 1280 engine blocks on the benches' engine-sims, 200k of
    these the default here), and evicts what was least recently used. So the index learns, per backend, how old a
    block may be and still be cached there (`capacity`, in the same count), from what the backend reports of each
    prompt sent to it whose prefix the index holds (`observe`, from its usage's cached tokens): a prefix less than
    half there is evidence that blocks of its age are evicted (a capacity above that age falls below it, at most
    halving per miss, so a miss with some other cause costs little); one there, that blocks of its age are kept (a
    capacity below 1.25x that age rises to it). Blocks older than the capacity are presumed evicted: routing does
    not match them (`matched_blocks`), but they stay, up to the budget, so that a prompt sent where one was kept
    still shows it and raises the capacity again (dropped, a capacity learned low had only ratcheted down, and
    conversations the engines still held were moved). A backend whose usage never reports cached tokens is never
    observed and keeps the budget. The age counts a block sent twice twice, where the engine's eviction goes by
    distinct blocks; the capacity, learned in the same count, makes up for it on average."""

    GROW = 1.25  # a prefix kept at an age over capacity / GROW raises the capacity to GROW x that age

    def __init__(self, max_blocks_per_backend: int = 200_000) -> None:
        self.max_blocks = max_blocks_per_backend
        self._blocks: dict[str, OrderedDict[int, int]] = {}  # block hash -> blocks recorded there by its last use
        self._recorded: dict[str, int] = {}  # blocks recorded there so far
        self._capacity: dict[str, float] = {}  # learned; the budget where none is

    def capacity(self, backend_id: str) -> float:
        """The age up to which a block is presumed still cached on `backend_id`."""
        return self._capacity.get(backend_id, float(self.max_blocks))

    def learned(self, backend_id: str) -> bool:
        """Whether a capacity for `backend_id` has been learned (else it is the budget)."""
        return backend_id in self._capacity

    def matched_blocks(self, backend_id: str, hashes: list[int], within_capacity: bool = True) -> int:
        """How many of `hashes` lead the blocks held for `backend_id`: of those presumed still cached there, or, not
        `within_capacity`, of all it holds."""
        blocks = self._blocks.get(backend_id)
        if not blocks:
            return 0
        oldest = self._recorded[backend_id] - self.capacity(backend_id) if within_capacity else -math.inf
        matched = 0
        for h in hashes:
            stamp = blocks.get(h)
            if stamp is None or stamp < oldest:
                break
            matched += 1
        return matched

    def age(self, backend_id: str, hashes: list[int], matched: int) -> int:
        """The age of the last of the first `matched` blocks of `hashes` on `backend_id` (0 for none): how many
        blocks were recorded there since it was last used. The deepest block of a prefix is its oldest (a shorter
        prefix is used by every prompt that uses a longer one), and an engine evicts it first."""
        if matched <= 0:
            return 0
        return self._recorded[backend_id] - self._blocks[backend_id][hashes[matched - 1]]

    def record(self, backend_id: str, hashes: list[int]) -> None:
        blocks = self._blocks.setdefault(backend_id, OrderedDict())
        recorded = self._recorded[backend_id] = self._recorded.get(backend_id, 0) + len(hashes)
        for h in hashes:
            blocks[h] = recorded
            blocks.move_to_end(h)
        while len(blocks) > self.max_blocks:
            blocks.popitem(last=False)

    def observe(self, backend_id: str, age: int, kept: bool) -> None:
        """A prefix the index held for `backend_id`, its deepest block `age` old then, was `kept` there (at least
        half of it, as the backend's usage reports: see `PrefixAware.observe`) or not."""
        if backend_id not in self._blocks:
            return
        capacity = self.capacity(backend_id)
        if not kept:  # evicted: blocks of this age are gone
            learned = min(capacity, max(age - 1.0, capacity / 2))
        else:
            learned = max(capacity, min(self.GROW * age, float(self.max_blocks)))
        if learned != capacity:
            self._capacity[backend_id] = learned

    def size(self, backend_id: str) -> int:
        return len(self._blocks.get(backend_id, ()))

    def forget(self, backend_id: str) -> None:
        self._blocks.pop(backend_id, None)
        self._recorded.pop(backend_id, None)
        self._capacity.pop(backend_id, None)
