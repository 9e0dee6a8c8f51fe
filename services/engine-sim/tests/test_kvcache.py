from tmx_engine_sim.domain.kvcache import PrefixCache, block_hashes


def tokens(n, start=0):
    return list(range(start, start + n))


def test_block_hashes_chain_so_equal_blocks_after_different_prefixes_differ():
    a = block_hashes(tokens(32), 16)
    b = block_hashes(tokens(16, 1000) + tokens(16, 16), 16)
    assert len(a) == 2 and a[1] != b[1]
    assert block_hashes(tokens(31), 16) == a[:1]  # partial blocks are not hashed


def test_shared_prefix_is_served_from_cache():
    cache = PrefixCache(num_blocks=100, block_size=16)
    first = cache.try_allocate(tokens(64), 16)
    assert first.cached_tokens == 0
    cache.release(first)
    again = cache.try_allocate(tokens(64) + tokens(10, 500), 16)
    assert again.cached_tokens == 64
    assert (cache.queries, cache.hits) == (64 + 74, 64)


def test_a_fully_cached_prompt_still_computes_its_last_token():
    cache = PrefixCache(num_blocks=100, block_size=16)
    cache.release(cache.try_allocate(tokens(32), 1))
    assert cache.try_allocate(tokens(32), 1).cached_tokens == 31


def test_lru_eviction_frees_the_least_recently_used_blocks():
    cache = PrefixCache(num_blocks=4, block_size=16)
    a = cache.try_allocate(tokens(32), 1)  # 2 shared blocks + 1 private
    cache.release(a)
    b = cache.try_allocate(tokens(32, 1000), 1)  # needs 3: evicts one of a's blocks
    assert b is not None and b.cached_tokens == 0
    cache.release(b)
    c = cache.try_allocate(tokens(32), 1)
    assert c.cached_tokens == 0  # a's first block was evicted, so nothing of its chain matches


def test_allocation_fails_when_blocks_are_referenced_and_usage_counts_them():
    cache = PrefixCache(num_blocks=4, block_size=16)
    held = cache.try_allocate(tokens(48), 16)  # 3 shared + 1 private = all 4 blocks
    assert cache.usage == 1.0
    assert cache.try_allocate(tokens(16, 900), 1) is None
    cache.release(held)
    assert cache.usage == 0.0
    assert cache.try_allocate(tokens(16, 900), 1) is not None
