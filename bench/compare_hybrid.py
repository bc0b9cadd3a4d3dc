"""Hybrid search: retrieval quality of vector, keyword and hybrid modes, and their speed.

    apt-get install wordnet-base        # the corpus: 117k WordNet glosses
    python bench/compare_hybrid.py [--quality-n 25000 --queries 1000 --speed-queries 1000]

Quality (needs the ``embed`` extra: the default model, all-MiniLM-L6-v2, on the CPU). Every
WordNet synset becomes a passage ``"word, word: gloss"`` with the gloss's quoted example
sentences removed; each removed example is a query, and the passages whose gloss held that
example are its relevant set. Removing the example keeps the task from being string matching:
what is left to match is the definition, the synonyms and the headword (which examples often
use, as a real query names its subject). A seeded sample of ``--quality-n`` passages is
indexed and ``--queries`` of their examples are asked, in vector, text and hybrid mode (RRF,
and weighted), through the public API in one run; nDCG@10 and recall@10 are reported.

Speed: all 117,659 passages as documents, with seeded synthetic unit vectors (384-d) instead of
embeddings (exact search costs the same whatever the vectors hold, and embedding 117k passages
takes about 12 minutes here). Single queries one at a time, k=10, ``--speed-queries`` example
sentences: text mode alone, vector mode alone (a precomputed vector) and hybrid (the same
vector plus the sentence as keywords), interleaved per query after a warm-up pass. The hybrid
overhead is the median of per-query differences, hybrid minus vector. Text mode is also timed
on a freshly opened store (cold postings cache). Writes ``results/hybrid.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import vecstore  # noqa: E402
from vecstore.corpora import wordnet_passages  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EXAMPLE = re.compile(r'"([^"]*)"')
DIM = 384


def corpus() -> tuple[list[str], list[str], list[dict], dict[str, list[int]]]:
    """Passages without their examples: ``(ids, texts, metadata, example -> passage indexes)``."""
    ids, texts, metas, examples = [], [], [], {}
    for p in wordnet_passages():
        found = [e.strip() for e in EXAMPLE.findall(p.text)]
        text = EXAMPLE.sub("", p.text)
        text = re.sub(r"(\s*;\s*)+$", "", re.sub(r";\s*(;\s*)+", "; ", text)).strip()
        for e in found:
            if len(e.split()) >= 3:
                examples.setdefault(e, []).append(len(ids))
        ids.append(p.id)
        texts.append(text)
        metas.append(p.metadata)
    return ids, texts, metas, examples


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(ranked[:10]) if r in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return dcg / ideal


def quality(args, ids, texts, metas, examples) -> dict:
    rng = np.random.default_rng(args.seed)
    chosen = np.sort(rng.choice(len(ids), size=min(args.quality_n, len(ids)), replace=False))
    inside = set(chosen.tolist())
    # A query's relevant set must be wholly inside the sample.
    usable = sorted(e for e, where in examples.items() if set(where) <= inside)
    picked = [usable[i] for i in rng.choice(len(usable), size=args.queries, replace=False)]
    store = Path(args.cache_dir) / "quality"
    with vecstore.open(store, durability="normal", progress=False) as db:
        # Rebuilt every run (the code under test builds the index); the store's embedding
        # cache, which outlives the collection, makes re-runs cheap.
        if "wordnet" in db.list_collections():
            db.delete_collection("wordnet")
        c = db.create_collection("wordnet", encoder=MODEL)
        t = time.perf_counter()
        c.add_batches(
            ({"id": ids[i], "document": texts[i], "metadata": metas[i]} for i in chosen.tolist()),
            batch_size=2048,
        )
        print(f"added {len(chosen)} passages in {time.perf_counter() - t:.0f} s")
        runs = {
            "vector": {"mode": "vector"},
            "text": {"mode": "text"},
            "hybrid_rrf": {"mode": "hybrid"},
            "hybrid_weighted": {"mode": "hybrid", "fusion": "weighted"},
        }
        out = {}
        for name, kw in runs.items():
            results = c.query_many(picked, k=10, **kw)
            scores, recalls = [], []
            for q, res in zip(picked, results):
                relevant = {ids[i] for i in examples[q]}
                scores.append(ndcg_at_10(res.ids, relevant))
                recalls.append(len(relevant & set(res.ids)) / len(relevant))
            out[name] = {"ndcg@10": float(np.mean(scores)), "recall@10": float(np.mean(recalls))}
            m = out[name]
            print(f"{name:16s} nDCG@10 {m['ndcg@10']:.4f}  recall@10 {m['recall@10']:.4f}")
    return {
        "passages": int(len(chosen)),
        "queries": len(picked),
        "queries_available": len(usable),
        "seed": args.seed,
        "model": MODEL,
        "modes": out,
    }


def _percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95))}


def speed(args, ids, texts, metas, examples) -> dict:
    n = len(ids)
    rng = np.random.default_rng([args.seed, 1])
    store = Path(args.cache_dir) / "speed"
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with vecstore.open(store, durability="normal", progress=False) as db:
        if "wordnet" in db.list_collections():
            db.delete_collection("wordnet")
        c = db.create_collection("wordnet", dim=DIM)
        t = time.perf_counter()
        for s in range(0, n, 20_000):
            c.add(
                ids[s : s + 20_000],
                vectors=x[s : s + 20_000],
                documents=texts[s : s + 20_000],
                metadata=metas[s : s + 20_000],
            )
        build = time.perf_counter() - t
        c.compact()
        print(f"built {n} rows (vectors + documents + metadata) in {build:.1f} s")
    queries = sorted(examples)
    picked = [queries[i] for i in rng.choice(len(queries), size=args.speed_queries, replace=False)]
    xq = rng.standard_normal((len(picked), DIM), dtype=np.float32)
    out: dict = {"documents": n, "queries": len(picked), "k": 10, "build_s": build}
    with vecstore.open(store, read_only=True) as db:
        c = db.get_collection("wordnet")
        cold = []
        for q in picked:
            t = time.perf_counter()
            c.query(q, mode="text")
            cold.append((time.perf_counter() - t) * 1e3)
        out["text_cold_cache"] = _percentiles(cold)
        for q, v in zip(picked[:50], xq[:50]):  # warm-up: kernels, maps, caches
            c.query(v)
            c.query(v, text=q, mode="hybrid")
        times: dict[str, list[float]] = {"text": [], "vector": [], "hybrid": []}
        for i, (q, v) in enumerate(zip(picked, xq)):
            calls = [
                ("text", (q,), {"mode": "text"}),
                ("vector", (v,), {}),
                ("hybrid", (v,), {"text": q, "mode": "hybrid"}),
            ]
            for name, a, kw in calls if i % 2 else calls[::-1]:
                t = time.perf_counter()
                c.query(*a, **kw)
                times[name].append((time.perf_counter() - t) * 1e3)
        for name, ms in times.items():
            out[name] = _percentiles(ms)
        diff = np.asarray(times["hybrid"]) - np.asarray(times["vector"])
        out["hybrid_minus_vector"] = {
            "p50_of_differences_ms": float(np.median(diff)),
            "difference_of_p50s_ms": out["hybrid"]["p50_ms"] - out["vector"]["p50_ms"],
        }
    for key in ("text_cold_cache", "text", "vector", "hybrid"):
        print(f"{key:16s} p50 {out[key]['p50_ms']:7.2f} ms  p95 {out[key]['p95_ms']:7.2f} ms")
    extra = out["hybrid_minus_vector"]["p50_of_differences_ms"]
    print(f"hybrid - vector   p50 of per-query differences {extra:.2f} ms")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quality-n", type=int, default=25_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--speed-queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--only", default="quality,speed")
    ap.add_argument("--cache-dir", default="/tmp/vecstore-hybrid-cache")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "hybrid.json"))
    args = ap.parse_args()
    only = set(args.only.split(","))
    ids, texts, metas, examples = corpus()
    print(f"{len(ids)} passages, {len(examples)} distinct example sentences of 3+ words")
    result: dict = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "loadavg_start": os.getloadavg(),
        "corpus": {"passages": len(ids), "examples": len(examples)},
    }
    t = time.perf_counter()
    if "speed" in only:
        result["speed"] = speed(args, ids, texts, metas, examples)
    if "quality" in only:
        result["quality"] = quality(args, ids, texts, metas, examples)
    result["wall_s"] = time.perf_counter() - t
    result["loadavg_end"] = os.getloadavg()
    out = Path(args.out)
    if out.exists() and only != {"quality", "speed"}:
        previous = json.loads(out.read_text())
        previous.update(result)
        result = previous
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
