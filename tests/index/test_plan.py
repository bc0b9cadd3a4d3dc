"""How ANN re-ranking bounds the segment pages a process keeps mapped."""

from __future__ import annotations

import numpy as np

from vecstore.index import flat, plan


def parts_of(total_bytes: int, count: int = 2) -> tuple[list[flat.Part], list[int]]:
    """Segments of ``total_bytes`` of vectors in all (views of one value, no memory), and the
    list their releases are counted in."""
    released = []
    rows = total_bytes // (count * 384 * 4)
    parts = [
        flat.Part(
            i,
            np.broadcast_to(np.float32(0), (rows, 384)),
            np.zeros(0, np.float32),
            np.zeros(0, np.int64),
            None,
            release=lambda i=i: released.append(i),
        )
        for i in range(count)
    ]
    return parts, released


def test_a_collection_up_to_the_mapped_bound_keeps_its_pages():
    parts, released = parts_of(plan.MAPPED_OK_BYTES)
    pages = plan.ResidentPages()
    for _ in range(50):
        pages.charge(parts, 100)
    assert released == []


def test_a_larger_one_releases_once_reranking_may_have_mapped_the_budget():
    parts, released = parts_of(2 * plan.MAPPED_OK_BYTES)
    pages = plan.ResidentPages()
    per_release = plan.RERANK_RESIDENT_BYTES // plan.FAULT_AROUND + 1  # rows
    for _ in range(per_release - 1):
        pages.charge(parts, 1)
    assert released == []
    pages.charge(parts, 1)
    assert released == [0, 1]  # every segment, once
    pages.charge(parts, 1)
    assert released == [0, 1]  # the count starts again


def test_allowed_rids_gives_sorted_positions_whatever_the_row_order():
    # A segment indexed by IVF stores its rows in list order, so its rids do not rise with
    # the position; a flat segment's do. Both kinds, dense and sparse rid ranges, one with
    # tombstones: each gives the sorted positions of the live rows among the rids asked for.
    rng = np.random.default_rng(3)
    rising = np.arange(100, 300, dtype=np.int64)
    shuffled = rng.permutation(np.arange(1000, 1200, dtype=np.int64))
    sparse = np.sort(rng.choice(10**9, 200, replace=False)).astype(np.int64)
    alive = rng.random(200) < 0.8
    parts = [
        flat.Part(seg, np.zeros((200, 2), np.float32), np.ones(200, np.float32), rids, dead)
        for seg, rids, dead in (
            (1, rising, None),
            (2, shuffled, alive),
            (3, sparse, None),
            (4, rng.permutation(sparse + 1), None),
        )
    ]
    snap = flat.Snapshot(1, parts)
    every = np.concatenate([p.rids for p in parts])
    asked = np.sort(rng.choice(every, 300, replace=False))
    for _ in range(2):  # the second call reads the cached look-ups
        for part, pos in zip(parts, snap.allowed_rids(asked)):
            want = np.flatnonzero(np.isin(part.rids, asked))
            if part.alive is not None:
                want = want[part.alive[want]]
            assert pos.tolist() == want.tolist()


def test_list_files_that_do_not_fit_their_model_are_refused():
    # The scans index look-up tables by code values without bounds checks: a well-formed
    # list file (valid checksum) with the wrong width, dtype or code range must be refused.
    from vecstore.index import ivf

    def model(m, ksub):
        cb = np.zeros((m, ksub, 2), np.float32)
        return ivf.Model("m", "ivfpq", "dot", np.zeros((4, 2 * m), np.float32), cb, 1, 1, 0, 0.0)

    offsets = np.array([0, 3, 3, 5, 6], dtype=np.int64)
    good = np.full((6, 8), 15, dtype=np.uint8)
    assert flat.lists_fit(model(8, 16), offsets, good, 6)
    assert flat.lists_fit(model(8, 256), offsets, good + 200, 6)
    assert not flat.lists_fit(model(8, 16), offsets, good + 1, 6)  # code 16 with 16 centroids
    assert not flat.lists_fit(model(6, 16), offsets, good, 6)  # 8 codes a row for m = 6
    assert not flat.lists_fit(model(8, 16), offsets, good.astype(np.int32), 6)
    assert not flat.lists_fit(model(8, 16), offsets, good, 7)
    assert not flat.lists_fit(model(8, 16), offsets[::-1].copy(), good, 6)
    ivf_model = ivf.Model(
        "m", "ivf", "dot", np.zeros((4, 8), np.float32), np.zeros((0, 0, 0)), 1, 1, 0, 0.0
    )
    assert flat.lists_fit(ivf_model, offsets, np.zeros((6, 0), np.uint8), 6)
