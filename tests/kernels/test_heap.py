"""The shared top-k heap helpers against NumPy oracles: push, merge and sort."""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

from __future__ import annotations

import numpy as np
import pytest

from vecstore.kernels import exact, heap


@pytest.mark.parametrize("k", [1, 2, 7, 64])
def test_push_keeps_the_k_best(k, rng):
    scores = rng.standard_normal(200).astype(np.float32)
    scores[50:60] = scores[10]  # ties
    D, I = exact.new_heaps(1, k)
    for i, s in enumerate(scores):
        heap.push(D[0], I[0], s, i)
    assert I[0, 0] >= 0 and D[0, 0] == D[0].min()  # the worst kept score at the top
    np.testing.assert_array_equal(np.sort(D[0]), np.sort(scores)[-k:])
    np.testing.assert_array_equal(scores[I[0]], D[0])


def test_push_into_a_heap_with_room_keeps_everything(rng):
    D, I = exact.new_heaps(1, 10)
    for i in range(4):
        heap.push(D[0], I[0], np.float32(i), i)
    heap.sort(D[0], I[0])
    np.testing.assert_array_equal(I[0], [3, 2, 1, 0, -1, -1, -1, -1, -1, -1])
    assert np.isneginf(D[0, 4:]).all()


def test_merge_heaps_keeps_the_best(rng):
    k = 7
    PD, PI = exact.new_heaps(4, k)
    scores = rng.standard_normal(4 * k).astype(np.float32)
    PD[:] = scores.reshape(4, k)
    PI[:] = np.arange(4 * k).reshape(4, k)
    PI[2, 3] = -1  # an empty slot never counts, whatever its score
    D, I = exact.new_heaps(1, k)
    heap.merge(PD, PI, D[0], I[0])
    D, I, counts = exact.finish(D, I, np.zeros((1, 4), np.float32), "dot")
    valid = np.ones(4 * k, bool)
    valid[2 * k + 3] = False
    want = np.argsort(-np.where(valid, scores, -np.inf))[:k]
    np.testing.assert_array_equal(I[0], want)
    np.testing.assert_allclose(D[0], scores[want])
    assert counts[0] == k


@pytest.mark.parametrize("k", [1, 2, 3, 8, 33])
def test_sort_orders_any_pair_best_first(k, rng):
    # Not a heap: sort heapifies first.
    D = rng.standard_normal(k).astype(np.float32)
    D[: k // 3] = D[-1]  # ties
    I = rng.permutation(k).astype(np.int64)
    scores = dict(zip(I.tolist(), D.tolist()))
    heap.sort(D, I)
    assert (np.diff(D) <= 0).all()
    assert {i: scores[i] for i in I.tolist()} == scores
