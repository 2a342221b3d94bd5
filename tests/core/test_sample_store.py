"""The transcriber's audio store: appends, forgetting and copies by sample index."""

from __future__ import annotations

import numpy as np

from streamserver.core.asr import SampleStore


def test_store_keeps_exactly_the_samples_not_forgotten_across_growth_and_compaction() -> None:
    store = SampleStore(capacity=64)
    rng = np.random.default_rng(7)
    stream = rng.standard_normal(20000).astype(np.float32)
    pushed = 0
    forgotten = 0
    for step in range(200):
        n = int(rng.integers(1, 60))
        store.append(stream[pushed : pushed + n])
        pushed += n
        if step % 3 == 0:  # forget some of the oldest, like a trimmed buffer
            forgotten = max(forgotten, pushed - int(rng.integers(0, 400)))
            store.forget_before(forgotten)
        assert store.start == max(0, forgotten) and store.end == pushed
        lo = int(rng.integers(store.start, store.end + 1))
        hi = int(rng.integers(lo, store.end + 1))
        assert np.array_equal(store.copy(lo, hi), stream[lo:hi])
    assert np.array_equal(store.copy(store.start, store.end), stream[store.start : pushed])


def test_copies_do_not_alias_the_store_and_are_clipped_to_what_is_kept() -> None:
    store = SampleStore(capacity=8)
    store.append(np.arange(10, dtype=np.float32))
    store.forget_before(4)
    got = store.copy(0, 100)  # asks for more than is kept
    assert got.tolist() == [4, 5, 6, 7, 8, 9]
    store.append(np.full(50, -1, dtype=np.float32))  # grows, compacts
    assert got.tolist() == [4, 5, 6, 7, 8, 9]
    store.forget_before(1000)  # past the end: everything forgotten, nothing more
    assert store.start == store.end == 60
    assert store.copy(store.start, store.end).size == 0
