"""k-nearest-neighbour classification by a metadata field, and its evaluation.

The neighbours of a query are its ``k`` most similar rows among those whose field ``label``
holds a str, number or bool (and that ``where`` keeps), found by exact search; each votes for
its label with weight 1 (``"uniform"``) or 1/distance (``"distance"``: 1 - cos for cosine,
the Euclidean distance for l2; neighbours at distance 0, if any, take all the votes). The
label with the largest share wins, ties going to the label that sorts first: scikit-learn's
``KNeighborsClassifier`` rule. Must not import ``collection``, ``database`` or ``writes``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInput
from .index import plan
from .reader import Reader
from .storage import fields
from .storage.catalog import Catalog

WEIGHTS = ("distance", "uniform")
#: Queries searched at once: bounds the heaps and the gathered query vectors.
QUERY_CHUNK = 4096


@dataclass(frozen=True)
class Prediction:
    """One query's predicted label and the share of the votes each label got (summing to
    1; labels without votes left out)."""

    label: Any
    shares: dict[Any, float]


@dataclass(frozen=True, eq=False)
class Classification:
    """Predicted labels, one per query, in the order of the queries.

    Attributes
    ----------
    labels : list
        Each query's predicted label.
    classes : list
        Every label among the candidate neighbours, sorted (str after numbers and bools).
    shares : float32 ndarray (nq, len(classes))
        Each query's vote share per class; a row sums to 1.
    ids : list of str or None
        The queries' ids when stored rows were classified, else None.
    """

    labels: list[Any]
    classes: list[Any]
    shares: np.ndarray
    ids: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Prediction:
        row = self.shares[i]
        votes = {self.classes[j]: float(row[j]) for j in np.flatnonzero(row > 0)}
        return Prediction(self.labels[i], dict(sorted(votes.items(), key=lambda kv: -kv[1])))

    def __iter__(self) -> Iterator[Prediction]:
        for i in range(len(self)):
            yield self[i]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "labels": list(self.labels),
            "classes": list(self.classes),
            "shares": self.shares.tolist(),
        }
        if self.ids is not None:
            out["ids"] = list(self.ids)
        return out

    def to_list(self) -> list[dict[str, Any]]:
        """One ``{"label", "shares"}`` dict per query (with ``"id"`` for stored rows)."""
        out = []
        for i, p in enumerate(self):
            row = {"label": p.label, "shares": p.shares}
            if self.ids is not None:
                row = {"id": self.ids[i], **row}
            out.append(row)
        return out

    def __repr__(self) -> str:
        head = ", ".join(repr(v) for v in self.labels[:5]) + (", ..." if len(self) > 5 else "")
        return f"Classification({len(self)} queries, {len(self.classes)} classes: [{head}])"


@dataclass(frozen=True, eq=False)
class ClassifierReport:
    """How well kNN classification predicts a field on rows whose label is known.

    Attributes
    ----------
    accuracy : float
        Share of the evaluated rows predicted right.
    rows : int
        Rows evaluated.
    method : str
        ``"leave-one-out"`` (each row classified by all the others) or ``"holdout"`` (a
        random share of the rows classified by the rest).
    classes : list
        The true labels, sorted.
    support : int64 ndarray (len(classes),)
        Evaluated rows per true label.
    precision, recall : float64 ndarray (len(classes),)
        Per label (0 where a label was never predicted, or has no rows).
    macro_f1 : float
        The mean over labels of their F1 score.
    """

    accuracy: float
    rows: int
    method: str
    classes: list[Any]
    support: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    macro_f1: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "rows": self.rows,
            "method": self.method,
            "classes": list(self.classes),
            "support": self.support.tolist(),
            "precision": self.precision.tolist(),
            "recall": self.recall.tolist(),
            "macro_f1": self.macro_f1,
        }

    def __repr__(self) -> str:
        return (
            f"ClassifierReport({self.method}: accuracy={self.accuracy:.4f} over {self.rows} "
            f"rows, macro_f1={self.macro_f1:.4f}, {len(self.classes)} classes)"
        )


def _order(value: Any) -> tuple:
    """A sort key across label kinds: bools, then numbers, then strings."""
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, value)


@dataclass(frozen=True, eq=False)
class _Pool:
    """The candidate neighbours read in one transaction: the snapshot, its kept positions,
    the rows' rids (sorted) and their class numbers, and the sorted classes."""

    snap: Any
    allowed: list[np.ndarray]
    rids: np.ndarray
    codes: np.ndarray
    classes: list[Any]


def _pool(reader: Reader, cat: Catalog, label: str, where: Any) -> _Pool:
    snap = reader.snapshot(cat)
    rids, values = fields.field_values(cat, reader.record.id, label)
    allowed = reader.kept(cat, snap, where, within=rids)
    kept = np.sort(np.concatenate([p.rids[a] for p, a in zip(snap.parts, allowed)] or [rids[:0]]))
    at = np.searchsorted(rids, kept)
    values = [values[i] for i in at.tolist()]
    classes = sorted(set(values), key=_order)
    index = {(type(c) is bool, c): j for j, c in enumerate(classes)}
    codes = np.array([index[(type(v) is bool, v)] for v in values], dtype=np.int64)
    return _Pool(snap, allowed, kept, codes, classes)


def classify(
    reader: Reader,
    xq: np.ndarray | None,
    ids: list[str] | None,
    *,
    label: str,
    k: int,
    weights: str,
    where: Any,
) -> Classification:
    """Classify query vectors ``xq``, or the stored rows ``ids`` (each left out of its own
    neighbours); ``Collection.classify`` checked the arguments."""

    def read(cat: Catalog):
        pool = _pool(reader, cat, label, where)
        if ids is None:
            return pool, xq, None
        qrids, vectors = reader.examples(cat, pool.snap, ids)
        return pool, vectors, qrids

    pool, xq_, qrids = reader.consistent(read)
    if not len(pool.rids):
        raise InvalidInput(
            f"no row has a str, number or bool {label!r} in its metadata"
            + (" among the rows where= keeps" if where is not None else "")
        )
    codes = _neighbour_codes(reader, pool, xq_, qrids, k)
    shares = _votes(*codes, len(pool.classes), weights, reader.record.metric)
    predicted = [pool.classes[j] for j in np.argmax(shares, axis=1).tolist()]
    return Classification(predicted, pool.classes, shares, ids)


def evaluate(
    reader: Reader,
    *,
    label: str,
    k: int,
    weights: str,
    where: Any,
    holdout: float | None,
    seed: int,
) -> ClassifierReport:
    """Leave-one-out (``holdout`` None) or held-out accuracy of ``classify``."""
    pool = reader.consistent(lambda cat: _pool(reader, cat, label, where))
    n = len(pool.rids)
    if n < 2:
        raise InvalidInput(f"evaluating needs at least 2 rows with a {label!r}; got {n}")
    if holdout is None:
        test = np.arange(n)
        train = pool
        method = "leave-one-out"
    else:
        rng = np.random.default_rng(seed)
        m = min(n - 1, max(1, round(holdout * n)))
        test = np.sort(rng.choice(n, m, replace=False))
        rest = np.ones(n, dtype=bool)
        rest[test] = False
        allowed = pool.snap.allowed_rids(pool.rids[rest])
        train = _Pool(pool.snap, allowed, pool.rids, pool.codes, pool.classes)
        method = "holdout"
    xq = _vectors(pool, pool.rids[test])
    qrids = pool.rids[test] if holdout is None else None
    nb = _neighbour_codes(reader, train, xq, qrids, k)
    shares = _votes(*nb, len(pool.classes), weights, reader.record.metric)
    return _report(pool.codes[test], np.argmax(shares, axis=1), pool.classes, method)


def _vectors(pool: _Pool, rids: np.ndarray) -> np.ndarray:
    """The stored vectors of rows ``rids`` (sorted), in that order."""
    where = pool.snap.allowed_rids(rids)
    parts = pool.snap.parts
    out = np.concatenate([p.vectors[a] for p, a in zip(parts, where)])
    got = np.concatenate([p.rids[a] for p, a in zip(parts, where)])
    return np.ascontiguousarray(out[np.argsort(got, kind="stable")])


def _neighbour_codes(
    reader: Reader, pool: _Pool, xq: np.ndarray, qrids: np.ndarray | None, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scores, classes, valid)`` (nq, k) of each query's k nearest rows of the pool; with
    ``qrids``, each query's own row is left out."""
    metric = reader.record.metric
    nq = len(xq)
    extra = 1 if qrids is not None else 0
    S = np.full((nq, k), -np.inf, dtype=np.float32)
    C = np.zeros((nq, k), dtype=np.int64)
    V = np.zeros((nq, k), dtype=bool)
    for lo in range(0, nq, QUERY_CHUNK):
        hi = min(nq, lo + QUERY_CHUNK)
        scores, rids, counts = plan.search(
            pool.snap, np.ascontiguousarray(xq[lo:hi]), metric, k + extra, pool.allowed,
            exact=True,
        )  # fmt: skip
        valid = np.arange(k + extra)[None, :] < counts[:, None]
        if qrids is not None:
            # leave out the query's own row; failing that (an unlabelled row, or one tied
            # with more than k copies of itself), the last of k + 1 neighbours
            own = (rids == qrids[lo:hi, None]) & valid
            full = ~own.any(axis=1) & (counts > k)
            own[np.flatnonzero(full), counts[full] - 1] = True
            valid &= ~own
            order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
            scores = np.take_along_axis(scores, order, axis=1)
            rids = np.take_along_axis(rids, order, axis=1)
            valid = np.take_along_axis(valid, order, axis=1)
        at = np.searchsorted(pool.rids, np.where(valid, rids, pool.rids[0]))
        S[lo:hi] = scores
        C[lo:hi] = pool.codes[np.minimum(at, len(pool.rids) - 1)]
        V[lo:hi] = valid
    return S, C, V


def _votes(
    scores: np.ndarray, codes: np.ndarray, valid: np.ndarray, nclasses: int, weights: str,
    metric: str,
) -> np.ndarray:  # fmt: skip
    """Vote shares float32 (nq, nclasses) of the neighbours."""
    nq = len(scores)
    if weights == "uniform":
        w = valid.astype(np.float64)
    else:
        s = scores.astype(np.float64)
        dist = 1.0 - s if metric == "cosine" else np.sqrt(np.maximum(-s, 0.0))
        dist = np.maximum(dist, 0.0)
        zero = valid & (dist == 0.0)
        with np.errstate(divide="ignore"):
            w = np.where(valid, 1.0 / dist, 0.0)
        exact = zero.any(axis=1)
        w[exact] = zero[exact]
    votes = np.zeros((nq, nclasses), dtype=np.float64)
    np.add.at(votes, (np.repeat(np.arange(nq), scores.shape[1]), codes.ravel()), w.ravel())
    total = votes.sum(axis=1, keepdims=True)
    np.divide(votes, total, out=votes, where=total > 0)
    return votes.astype(np.float32)


def _report(truth: np.ndarray, predicted: np.ndarray, classes: Sequence, method: str):
    c = len(classes)
    support = np.bincount(truth, minlength=c)
    made = np.bincount(predicted, minlength=c)
    right = np.bincount(truth[truth == predicted], minlength=c)
    precision = np.divide(right, made, out=np.zeros(c), where=made > 0)
    recall = np.divide(right, support, out=np.zeros(c), where=support > 0)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros(c), where=precision + recall > 0
    )
    return ClassifierReport(
        accuracy=float(np.mean(truth == predicted)),
        rows=len(truth),
        method=method,
        classes=list(classes),
        support=support.astype(np.int64),
        precision=precision,
        recall=recall,
        macro_f1=float(f1[support > 0].mean()) if (support > 0).any() else 0.0,
    )
