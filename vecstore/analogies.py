"""Word vectors: analogies ("a is to b as c is to ?"), gensim's ``most_similar``, and the
accuracy on an analogy test set such as Google's ``questions-words.txt``.

A collection of word vectors has the words as ids and the cosine metric. Answers are exact:
3CosAdd is one cosine query per question, ``b - a + c`` on unit vectors, through the exact
batch kernel (kernels/exact.py, sgemm tiles); 3CosMul scans with kernels/analogy.py. A whole
test set is answered in batches of questions inside one read transaction, never a query at a
time. Must not import ``collection``, ``database`` or ``writes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .reader import AnnOptions, Reader
from .results import QueryResult
from .storage import fields
from .storage.catalog import Catalog

METHODS = ("3cosadd", "3cosmul")
#: Questions per kernel call. Larger batches mean fewer, larger sgemm calls (measured on
#: GloVe-50d: 4,096 questions per call ran 2-4x faster than 256 on the busy 2-core machine);
#: 3CosMul keeps three (questions x tile) score blocks, so it takes fewer at a time.
BATCH = {"3cosadd": 4096, "3cosmul": 1024}
#: Heap slots beyond k: the three input words, which are dropped from the answers.
INPUTS = 3


@dataclass(frozen=True)
class Section:
    """One section of an analogy test set: questions answered (all four words in the
    vocabulary), those answered right, and those skipped (a word outside it)."""

    name: str
    correct: int
    total: int
    skipped: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True, eq=False)
class AnalogyReport:
    """The accuracy of ``method`` on a test set, per section and overall.

    ``questions`` are the set's ``(section, a, b, c, expected)`` in order, as looked up;
    ``predicted[i]`` is the answer to question i, or None where a word of it is outside the
    vocabulary (the question is skipped, as gensim skips it).
    """

    method: str
    sections: list[Section]
    questions: list[tuple[str, str, str, str, str]] = field(repr=False)
    predicted: list[str | None] = field(repr=False)

    @property
    def correct(self) -> int:
        return sum(s.correct for s in self.sections)

    @property
    def total(self) -> int:
        return sum(s.total for s in self.sections)

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.sections)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def __repr__(self) -> str:
        return (
            f"AnalogyReport({self.method}: accuracy={self.accuracy:.4f} over {self.total} "
            f"questions, {self.skipped} skipped, {len(self.sections)} sections)"
        )

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "accuracy": self.accuracy,
            "correct": self.correct,
            "total": self.total,
            "skipped": self.skipped,
            "sections": [
                {
                    "name": s.name,
                    "accuracy": s.accuracy,
                    "correct": s.correct,
                    "total": s.total,
                    "skipped": s.skipped,
                }
                for s in self.sections
            ],  # fmt: skip
        }


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.sqrt(np.einsum("ij,ij->i", x, x))
    inv = np.zeros_like(n)
    np.divide(1.0, n, out=inv, where=n > 0)
    return np.ascontiguousarray(x * inv[:, None], dtype=np.float32)


def _best(reader, cat, snap, abc, vectors, k, method, allowed):
    """The top ``k`` rows of each question other than its own words: ``(scores, rids,
    counts)`` as ``Reader.topk``. ``abc`` int64 (nq, 3): the rids of a, b, c; ``vectors``
    float32 (nq, 3, dim) their vectors."""
    A, B, C = (_unit(vectors[:, j]) for j in range(3))
    if method == "3cosadd":
        xq = np.ascontiguousarray((B + C) - A, dtype=np.float32)
        scores, rids, _ = reader.topk(cat, snap, xq, k + INPUTS, allowed, AnnOptions(exact=True))
    else:
        from .kernels import analogy, exact

        D, I = exact.new_heaps(len(abc), k + INPUTS)
        for i, part in enumerate(snap.parts):
            pos = part.alive if allowed is None else allowed[i]
            if pos is not None and pos.dtype == np.bool_:
                pos = np.flatnonzero(pos)
            x = part.vectors if pos is None else part.vectors[pos]
            norms = part.norms if pos is None else part.norms[pos]
            labels = part.rids if pos is None else part.rids[pos]
            analogy.cosmul_into(A, B, C, x, norms, labels, D, I)
        scores, rids, _ = exact.finish(D, I, A, "dot")
    # drop the question's own words, keeping the order of the rest
    keep = (rids >= 0) & ~(rids[:, :, None] == abc[:, None, :]).any(axis=2)
    keep &= np.cumsum(keep, axis=1) <= k
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    counts = keep.sum(axis=1).astype(np.int64)
    scores = np.take_along_axis(scores, order, axis=1)
    rids = np.take_along_axis(rids, order, axis=1)
    past = np.arange(k)[None, :] >= counts[:, None]
    scores[past], rids[past] = -np.inf, -1
    return scores, rids, counts


def analogy(
    reader: Reader, a: str, b: str, c: str, *, k: int, method: str, where: Any
) -> QueryResult:
    """The ``k`` best answers to "a is to b as c is to ?", never a, b or c (the words are
    checked ids of a cosine collection)."""

    def read(cat: Catalog):
        snap = reader.snapshot(cat)
        rids, vectors = reader.examples(cat, snap, [a, b, c])
        allowed = reader.kept(cat, snap, where)
        scores, got, counts = _best(
            reader, cat, snap, rids[None], vectors[None], k, method, allowed
        )
        return scores, got, counts, reader.found(cat, got)

    scores, got, counts, found = reader.consistent(read)
    mode = "vector" if method == "3cosadd" else "analogy"
    return reader.results(scores, got, counts, found, mode=mode)[0]


def most_similar(
    reader: Reader, positive: list, negative: list, *, k: int, where: Any
) -> QueryResult:
    """gensim's ``most_similar``: the rows of highest cosine with the sum of the positive
    examples less the negative ones, stored words (ids) at unit length and vectors as given;
    the words given are never returned."""
    ids = [e for e in positive + negative if isinstance(e, str)]

    def read(cat: Catalog):
        snap = reader.snapshot(cat)
        rids, vectors = reader.examples(cat, snap, ids)
        unit = dict(zip(ids, _unit(vectors))) if ids else {}
        q = np.zeros(reader.record.dim, dtype=np.float32)
        for e in positive:
            q += unit[e] if isinstance(e, str) else e
        for e in negative:
            q -= unit[e] if isinstance(e, str) else e
        allowed = reader.kept(cat, snap, where, None, rids if ids else None)
        scores, got, counts = reader.topk(cat, snap, q[None], k, allowed, AnnOptions(exact=True))
        return scores, got, counts, reader.found(cat, got)

    return reader.results(*reader.consistent(read))[0]


def evaluate(
    reader: Reader,
    questions: Sequence[tuple[str, str, str, str, str]],
    *,
    method: str,
    where: Any,
    lowercase: bool,
) -> AnalogyReport:
    """``AnalogyReport`` of ``method`` on ``(section, a, b, c, expected)`` questions: each
    answered by the best row other than a, b and c among the rows ``where`` keeps (the
    vocabulary); a question with a word outside the vocabulary is skipped."""
    if lowercase:
        questions = [(s, *(w.lower() for w in q)) for s, *q in questions]
    words = list(dict.fromkeys(w for q in questions for w in q[1:]))
    coll = reader.record.id

    def read(cat: Catalog):
        snap = reader.snapshot(cat)
        located = cat.locate(coll, words)
        known = [w for w in words if w in located]
        rids, vectors = reader.examples(cat, snap, known)
        allowed = reader.kept(cat, snap, where)
        if allowed is not None:  # the vocabulary: the rows the filter keeps
            vocab = np.concatenate([p.rids[pos] for p, pos in zip(snap.parts, allowed)])
            inside = np.isin(rids, vocab)
            rids, vectors = rids[inside], vectors[inside]
            known = [w for w, ok in zip(known, inside.tolist()) if ok]
        at = {w: i for i, w in enumerate(known)}
        asked = [i for i, q in enumerate(questions) if all(w in at for w in q[1:])]
        slots = np.array([[at[w] for w in questions[i][1:]] for i in asked], np.int64)
        best = np.full(len(asked), -1, dtype=np.int64)
        step = BATCH[method]
        for lo in range(0, len(asked), step):
            s = slots[lo : lo + step].reshape(-1, 4)
            _, got, _ = _best(
                reader, cat, snap, rids[s[:, :3]], vectors[s[:, :3]], 1, method, allowed
            )
            best[lo : lo + step] = got[:, 0]
        answered = np.unique(best[best >= 0])
        names = dict(zip(answered.tolist(), fields.ids_of(cat, coll, answered)))
        return asked, [names.get(r) for r in best.tolist()]

    asked, answers = reader.consistent(read)
    predicted: list[str | None] = [None] * len(questions)
    for i, word in zip(asked, answers):
        predicted[i] = word if word is not None else ""
    return AnalogyReport(method, _sections(questions, predicted), list(questions), predicted)


def _sections(questions, predicted) -> list[Section]:
    counts: dict[str, list[int]] = {}
    for q, p in zip(questions, predicted):
        c = counts.setdefault(q[0], [0, 0, 0])
        if p is None:
            c[2] += 1
        else:
            c[1] += 1
            c[0] += p == q[4]
    return [Section(name, *c) for name, c in counts.items()]
