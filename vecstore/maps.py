"""A map of the space: rows projected to 2 or 3 dimensions (PCA in NumPy, or UMAP), a scatter
plot of them coloured by a metadata field, and an export in the TensorFlow Embedding
Projector's format.

PCA streams over the rows block by block (a d x d covariance, then the projection), so it
needs memory for the coordinates only; UMAP needs the rows in memory, so large collections
are projected through a seeded ``sample``. matplotlib and umap-learn are optional and
imported on first use. Must not import ``collection``, ``database`` or ``writes``.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInput, MissingDependency
from .reader import LiveRows

METHODS = ("pca", "umap")
#: Colours of a plot before the rarest values are grouped as "other" (tab20's twenty, one
#: of them kept for "other").
MAX_COLORS = 20
OTHER = "other"


@dataclass(frozen=True, eq=False)
class Projection:
    """Coordinates of rows in ``dims`` dimensions: ``ids`` and ``coords`` float32 ``(n,
    dims)``, by ``method``. For PCA, ``explained`` is the share of the variance each axis
    explains (None for UMAP)."""

    ids: list[str]
    coords: np.ndarray
    method: str
    explained: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        return iter(zip(self.ids, self.coords))

    def __repr__(self) -> str:
        share = ""
        if self.explained is not None:
            share = f", explained={float(self.explained.sum()):.3f}"
        return f"Projection({len(self)} rows, {self.method}, dims={self.coords.shape[1]}{share})"

    def to_dict(self) -> dict:
        return {
            "ids": list(self.ids),
            "coords": self.coords.tolist(),
            "method": self.method,
            "explained": None if self.explained is None else self.explained.tolist(),
        }


def sampled(rows: LiveRows, sample: int | None, seed: int) -> np.ndarray | None:
    """Row numbers of a seeded uniform sample of ``sample`` rows, in row order; None for
    every row."""
    if sample is None or sample >= len(rows):
        return None
    return np.sort(np.random.default_rng(seed).choice(len(rows), sample, replace=False))


def project(rows: LiveRows, dims: int, method: str, sample: int | None, seed: int) -> Projection:
    """The rows (a seeded sample of them) in ``dims`` dimensions. Cosine collections are
    projected at unit length: their directions are what the metric sees."""
    picked = sampled(rows, sample, seed)
    ids = rows.ids if picked is None else [rows.ids[i] for i in picked.tolist()]
    if method == "umap":
        return Projection(ids, _umap(rows, picked, dims, seed), "umap")
    coords, explained = _pca(rows, picked, dims)
    return Projection(ids, coords, "pca", explained)


def _blocks(rows: LiveRows, picked: np.ndarray | None, size: int = 8192):
    """Float64 blocks of the (picked) rows, unit length for a cosine collection."""
    if picked is None:
        chunks = (rows.block(a, b) for a, b in rows.spans(size))
    else:
        chunks = (rows.take(picked[lo : lo + size]) for lo in range(0, len(picked), size))
    for x, norms in chunks:
        x = x.astype(np.float64)
        if rows.metric == "cosine":
            inv = np.zeros(len(norms))
            np.divide(1.0, norms, out=inv, where=norms > 0)
            x *= inv[:, None]
        yield x


def _pca(rows: LiveRows, picked: np.ndarray | None, dims: int):
    """PCA by the eigenvectors of the covariance, accumulated in float64 over blocks; each
    axis's sign is fixed so that its largest loading is positive (the same map each run)."""
    d = rows.dim
    n, total, gram = 0, np.zeros(d), np.zeros((d, d))
    for x in _blocks(rows, picked):
        n += len(x)
        total += x.sum(axis=0)
        gram += x.T @ x
    if n == 0:
        return np.zeros((0, dims), dtype=np.float32), np.zeros(dims, dtype=np.float32)
    mean = total / n
    cov = gram / n - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:dims]
    W = vectors[:, order]
    W *= np.where(W[np.abs(W).argmax(axis=0), np.arange(W.shape[1])] < 0, -1.0, 1.0)
    coords = np.empty((n, dims), dtype=np.float32)
    at = 0
    for x in _blocks(rows, picked):
        coords[at : at + len(x), : W.shape[1]] = (x - mean) @ W
        at += len(x)
    coords[:, W.shape[1] :] = 0.0  # fewer dimensions than asked: the rest are flat
    spread = max(float(values.clip(min=0).sum()), 1e-300)
    explained = np.zeros(dims, dtype=np.float32)
    explained[: W.shape[1]] = values[order].clip(min=0) / spread
    return coords, explained


def _umap(rows: LiveRows, picked: np.ndarray | None, dims: int, seed: int) -> np.ndarray:
    try:
        import umap
    except ImportError:
        raise MissingDependency(
            "method='umap' needs umap-learn: pip install 'vecstore[umap]' (or umap-learn); "
            "method='pca' needs nothing more"
        ) from None
    x = np.concatenate(list(_blocks(rows, picked))) if len(rows) else np.zeros((0, rows.dim))
    if len(x) < 3:
        raise InvalidInput(f"UMAP needs at least 3 rows; got {len(x)}")
    metric = "cosine" if rows.metric == "cosine" else "euclidean"
    neighbours = min(15, len(x) - 1)
    model = umap.UMAP(
        n_components=dims, metric=metric, random_state=seed, n_neighbors=neighbours, n_jobs=1
    )
    with warnings.catch_warnings():
        # a seed makes UMAP single-threaded, and it says so on every call
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        xy = model.fit_transform(x.astype(np.float32))
    return np.ascontiguousarray(xy, dtype=np.float32)


# -- the plot ----------------------------------------------------------------------------


def groups(values: list[Any], max_colors: int = MAX_COLORS) -> tuple[list[str], list[str]]:
    """Each value's legend entry, and the entries most frequent first: the ``max_colors -
    1`` most frequent values keep their own (all of them if they fit in ``max_colors``), the
    rest share ``"other"``, as do rows without a value."""
    shown = ["" if v is None else str(v) for v in values]
    counts = Counter(s for s in shown if s)
    top = [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    if len(top) > max_colors:
        top = top[: max_colors - 1]
    keep = set(top)
    entries = [s if s in keep else OTHER for s in shown]
    return entries, top + ([OTHER] if OTHER in entries and OTHER not in keep else [])


def plot(
    path: Path,
    proj: Projection,
    colors: list[Any] | None,
    names: list[str],
    *,
    color_by: str | None,
    annotate: int,
    title: str | None,
) -> Path:
    """Write the scatter of a 2-D projection to ``path`` (PNG or SVG, by its suffix), coloured
    by ``colors`` (one value per row, or None), with up to ``annotate`` points labelled by
    ``names``: the point nearest the middle of each of the largest groups."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed, none opened
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency(
            "plot() needs matplotlib: pip install 'vecstore[plot]' (or matplotlib)"
        ) from None
    xy = proj.coords
    entries, legend = groups(colors if colors is not None else [None] * len(proj))
    # tab20 without its two greys (grey is "other"), and one of tab20b: 19 distinct colours
    tab20 = plt.get_cmap("tab20").colors
    palette = [c for i, c in enumerate(tab20) if i not in (14, 15)] + [plt.get_cmap("tab20b")(0)]
    fig, ax = plt.subplots(figsize=(10, 7.5), dpi=110)
    size = max(2.0, min(12.0, 12000 / max(len(proj), 1)))
    by = np.array(entries, dtype=object)
    for i, name in enumerate(legend):
        at = np.flatnonzero(by == name)
        colour = (0.75, 0.75, 0.75) if name == OTHER else palette[i % len(palette)]
        label = f"{name} ({len(at):,})"
        ax.scatter(xy[at, 0], xy[at, 1], s=size, color=colour, label=label, linewidths=0)
    if not legend:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, linewidths=0)
    for i in _landmarks(xy, entries, legend, annotate):
        ax.annotate(names[i], xy[i], fontsize=7, xytext=(3, 3), textcoords="offset points")
    if legend and colors is not None:
        ax.legend(
            title=color_by, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7,
            markerscale=max(1.0, 12 / size), frameon=False,
        )  # fmt: skip
    axis = "PC" if proj.method == "pca" else "UMAP "
    ax.set_xlabel(f"{axis}1")
    ax.set_ylabel(f"{axis}2")
    ax.set_title(title or f"{len(proj):,} rows, {proj.method.upper()}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _landmarks(xy: np.ndarray, entries: list[str], legend: list[str], n: int) -> list[int]:
    """Up to ``n`` rows to label: the row nearest the median of each group, largest groups
    first ("other" last), or evenly spread rows without groups."""
    if n <= 0 or not len(xy):
        return []
    by = np.array(entries, dtype=object)
    out = []
    for name in [g for g in legend if g != OTHER] or [OTHER]:
        at = np.flatnonzero(by == name)
        mid = np.median(xy[at], axis=0)
        out.append(int(at[np.argmin(((xy[at] - mid) ** 2).sum(axis=1))]))
    if len(out) < n:
        out += [i for i in np.linspace(0, len(xy) - 1, n).astype(int).tolist() if i not in out]
    return out[:n]


# -- the Embedding Projector ---------------------------------------------------------------


def cell(value: Any) -> str:
    """A TSV cell: the projector splits on tabs and newlines, so those (and the backslash
    that escapes them) are written as backslash escapes."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_projector(
    folder: Path,
    rows: LiveRows,
    picked: np.ndarray | None,
    table: list[list[Any]],
    header: list[str],
    *,
    name: str,
) -> dict:
    """Write ``vectors.tsv`` (the rows' stored vectors), ``metadata.tsv`` (``table``, with
    ``header`` as its first line when it has two columns or more, as the projector expects)
    and ``projector_config.json`` into ``folder``; returns the config."""
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(folder / "vectors.tsv", "w", encoding="utf-8", newline="\n") as fh:
        if picked is None:
            chunks = (rows.block(a, b)[0] for a, b in rows.spans(8192))
        else:
            chunks = (rows.take(picked[lo : lo + 8192])[0] for lo in range(0, len(picked), 8192))
        for x in chunks:
            n += len(x)
            fh.writelines("\t".join(f"{v:.7g}" for v in row) + "\n" for row in x.tolist())
    with open(folder / "metadata.tsv", "w", encoding="utf-8", newline="\n") as fh:
        if len(header) > 1:
            fh.write("\t".join(cell(h) for h in header) + "\n")
        fh.writelines("\t".join(cell(v) for v in line) + "\n" for line in table)
    config = {
        "embeddings": [
            {
                "tensorName": name,
                "tensorShape": [n, rows.dim],
                "tensorPath": "vectors.tsv",
                "metadataPath": "metadata.tsv",
            }
        ]
    }
    (folder / "projector_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return config
