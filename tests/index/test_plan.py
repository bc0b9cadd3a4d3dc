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
    snap = flat.Snapshot(1, parts)
    for _ in range(50):
        plan._bound_resident(snap, parts, 100)
    assert released == []


def test_a_larger_one_releases_once_reranking_may_have_mapped_the_budget():
    parts, released = parts_of(2 * plan.MAPPED_OK_BYTES)
    snap = flat.Snapshot(1, parts)
    per_release = plan.RERANK_RESIDENT_BYTES // plan._FAULT_AROUND + 1  # rows
    for _ in range(per_release - 1):
        plan._bound_resident(snap, parts, 1)
    assert released == []
    plan._bound_resident(snap, parts, 1)
    assert released == [0, 1]  # every segment, once
    plan._bound_resident(snap, parts, 1)
    assert released == [0, 1]  # the count starts again
