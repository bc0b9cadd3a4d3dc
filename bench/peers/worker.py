"""One measurement of one system in a fresh process, so that its time and resident memory
are its own: ``build`` (ingest into a new store), ``open`` (reopen it, time to the first
result) or ``query`` (recall and speed over the knob sweep, filters, RSS).

    python -m peers.worker MODE --system S --data DIR --store DIR --out FILE [options]

Run by compare_peers.py with bench/ and the repository root on PYTHONPATH. Writes one JSON
object to --out: the measures, or {"skipped": reason} / {"error": message}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from .base import adapter_class, disk_bytes, rss_mb
from .data import FILTERS, K, filter_value, load_info, recall


def _adapter(args, info: dict):
    return adapter_class(args.system)(threads=args.threads, n=info["n"], d=info["d"])


def build(args, info: dict) -> dict:
    """Ingest all rows in batches; give up (and extrapolate) once the measured rate says the
    load would take longer than --max-ingest-s."""
    xb = np.load(Path(args.data) / "xb.npy", mmap_mode="r")
    from .data import field_values

    fields = field_values(len(xb))
    ad = _adapter(args, info)
    store = Path(args.store)
    batch = ad.batch_rows
    t0 = time.perf_counter()
    ad.create(store)
    done = 0
    while done < len(xb):
        e = min(len(xb), done + batch)
        x = np.ascontiguousarray(xb[done:e])
        ad.add(done, x, {name: v[done:e] for name, v in fields.items()})
        done = e
        took = time.perf_counter() - t0
        predicted = took / done * len(xb)
        if done < len(xb) and took >= 10 and predicted > args.max_ingest_s:
            rate = done / took
            return {
                "skipped": (
                    f"ingest too slow for this run: {rate:,.0f} vectors/s over the first "
                    f"{done:,} rows extrapolates to {predicted / 60:.0f} min for "
                    f"{len(xb):,} (cap {args.max_ingest_s / 60:.0f} min)"
                ),
                "partial": {"rows": done, "seconds": took, "vectors_per_s": rate},
            }
    t_add = time.perf_counter() - t0
    ad.finish()
    took = time.perf_counter() - t0
    return {
        "ingest_s": took,
        "add_s": t_add,
        "finish_s": took - t_add,
        "vectors_per_s": len(xb) / took,
        "disk_bytes": disk_bytes(store),
        "peak_rss_mb": _hwm(),
    }


def _hwm() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def open_only(args, info: dict) -> dict:
    xq = np.load(Path(args.data) / "xq.npy")
    ad = _adapter(args, info)
    t = time.perf_counter()
    ad.import_modules()  # vecstore defers numba to the first search: it is counted there
    t0 = time.perf_counter()
    ad.open(Path(args.store))
    t1 = time.perf_counter()
    ad.search(xq[0], K)
    t2 = time.perf_counter()
    return {"import_s": t0 - t, "open_s": t1 - t0, "first_query_s": t2 - t0, "total_s": t2 - t}


def _passes(ad, one, xq, budget: float, repeats: int, min_q: int) -> dict:
    """Median single-query rate over ``repeats`` passes; each pass calls ``one(j, q)`` for
    the queries in order until all are done or ``budget`` seconds have passed (after at
    least ``min_q``). With several thread options, their passes are interleaved and the
    faster option's figures are kept (the other's rates are recorded)."""
    one(0, xq[0])
    opts = ad.thread_options() or (None,)
    rates: dict = {o: [] for o in opts}
    first: dict = {}
    for _ in range(repeats):
        for o in opts:
            if o is not None:
                ad.set_threads(o)
            found = []
            t0 = time.perf_counter()
            for j, q in enumerate(xq):
                found.append(one(j, q))
                if len(found) >= min_q and time.perf_counter() - t0 > budget:
                    break
            rates[o].append(len(found) / (time.perf_counter() - t0))
            first.setdefault(o, found)
    best = max(opts, key=lambda o: statistics.median(rates[o]))
    if best is not None:
        ad.set_threads(ad.threads)
    return {
        "qps": statistics.median(rates[best]),
        "threads": best,
        "rates": {str(o): r for o, r in rates.items()},  # every pass, per thread option
        "found": first[best],
    }


def _batch(ad, xq, budget: float, repeats: int) -> tuple[float, list, list]:
    """Median rate of one call answering all of ``xq`` (after one untimed call, which also
    compiles or loads whatever that batch size needs); stops repeating past the budget."""
    ad.search_batch(xq, K)
    rates, first = [], None
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        found = ad.search_batch(xq, K)
        rates.append(len(xq) / (time.perf_counter() - t0))
        first = first or found
        if time.perf_counter() - start > budget * repeats:
            break
    return statistics.median(rates), rates, first


def _filtered(ad, xq, name: str, budget: float, repeats: int, min_q: int, truth) -> dict:
    field = FILTERS[name][0]

    def one(j, q):
        return ad.search_filtered(q, K, field, filter_value(name, j))

    r = _passes(ad, one, xq, budget, repeats, min_q)
    found = r.pop("found")
    counts = [len(f) for f in found]
    return {
        **r,
        "queries": len(found),
        "mean_results": float(np.mean(counts)),
        "min_results": int(min(counts)),
        "recall": recall(found, truth),
    }


def query(args, info: dict) -> dict:
    data = Path(args.data)
    xq = np.load(data / "xq.npy")[: args.nq]
    gt = np.load(data / "gt.npy")
    ad = _adapter(args, info)
    ad.import_modules()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    ad.open(Path(args.store))
    t_open = time.perf_counter() - t0
    curve, sweep_start = [], time.perf_counter()
    for knob in ad.knobs() or (None,):
        ad.set_knob(knob)
        single = _passes(
            ad, lambda j, q: ad.search(q, K), xq, args.budget, args.repeats, args.min_q
        )
        found_s, qs = single.pop("found"), single["qps"]
        point = {
            "knob": knob,
            "qps_single": qs,
            "single": single,
            "n_single": len(found_s),
            "recall_single": recall(found_s, gt),
        }
        if ad.batch_api:
            nb = min(len(xq), max(args.min_q, int(qs * args.budget * 5)))
            qb, qb_samples, found_b = _batch(ad, xq[:nb], args.budget, args.repeats)
            point.update(
                qps_batch=qb, batch_samples=qb_samples, n_batch=nb, recall_batch=recall(found_b, gt)
            )
        best = max((len(found_s), "recall_single"), (point.get("n_batch", 0), "recall_batch"))
        point["recall"] = point[best[1]]
        curve.append(point)
        print(
            f"  {args.system} {ad.knob_name or ''}={knob}: recall {point['recall']:.3f} "
            f"single {qs:,.0f} q/s batch {point.get('qps_batch', float('nan')):,.0f} q/s",
            file=sys.stderr,
            flush=True,
        )
        if point["recall"] >= args.stop_recall or time.perf_counter() - sweep_start > args.sweep_s:
            break
    reached = [p for p in curve if p["recall"] >= args.target]
    chosen = reached[0] if reached else max(curve, key=lambda p: p["recall"])
    ad.set_knob(chosen["knob"])
    filtered = {}
    for name in FILTERS:
        truth = np.load(data / f"gt_{name}.npy")
        filtered[name] = _filtered(ad, xq, name, args.budget, args.repeats, args.min_q, truth)
    rss1 = rss_mb()
    out = {
        "open_s_in_query_process": t_open,
        "curve": curve,
        "chosen_knob": chosen["knob"],
        "reached_target": bool(reached),
        "filtered": filtered,
        "rss_before_open_mb": rss0,
        "rss_mb": rss1,
        "rss_growth_mb": rss1 - rss0,
        "index_info": ad.info(),
    }
    ad.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("mode", choices=("build", "open", "query"))
    ap.add_argument("--system", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-ingest-s", type=float, default=600)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-q", type=int, default=20)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--stop-recall", type=float, default=0.99)
    ap.add_argument("--sweep-s", type=float, default=240)
    args = ap.parse_args()
    info = load_info(Path(args.data))
    try:
        out = {"build": build, "open": open_only, "query": query}[args.mode](args, info)
    except Exception as e:  # recorded, not raised: one failing peer must not end the run
        out = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    Path(args.out).write_text(json.dumps(out, default=_jsonable))


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


if __name__ == "__main__":
    main()
