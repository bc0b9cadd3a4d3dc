"""Turns the peer comparison's results into ratios, docs/benchmarks.md and the recall-QPS
plots (docs/img/peers-<dataset>.png).

Imports matplotlib (Agg) lazily, and the adapters' class attributes only (no peer library).
"""

from __future__ import annotations

import math
from pathlib import Path

from .base import SYSTEMS, adapter_class
from .data import FILTERS

VECSTORE = ("vecstore-flat", "vecstore-ivfpq", "vecstore-hnsw", "vecstore-int8", "vecstore-binary")
# how the recall-QPS plots draw vecstore's own systems (colour, marker)
VECSTORE_STYLE = {
    "vecstore-flat": ("black", "s"),
    "vecstore-ivfpq": ("red", "o"),
    "vecstore-hnsw": ("darkred", "D"),
    "vecstore-int8": ("darkorange", "^"),
    "vecstore-binary": ("gold", "v"),
}
# the vecstore systems a peer is compared with, in this order (a row per pair); a peer not
# listed is compared with vecstore-flat if exact, vecstore-ivfpq if approximate
COUNTERPARTS = {
    "faiss-sq8-refine": ("vecstore-int8",),
    "hnswlib": ("vecstore-hnsw", "vecstore-ivfpq"),
    "chroma": ("vecstore-hnsw", "vecstore-ivfpq"),
    "milvus-lite": ("vecstore-ivfpq", "vecstore-hnsw"),
    "lancedb-ivfpq": ("vecstore-ivfpq", "vecstore-hnsw"),
    "faiss-ivfflat": ("vecstore-ivfpq", "vecstore-hnsw"),
    "faiss-ivfpq-refine": ("vecstore-ivfpq", "vecstore-hnsw"),
}
# vecstore's own modes, compared with its exact scan (the same run)
OWN_MODES = ("vecstore-int8", "vecstore-binary")
MEASURES = (  # key, column title, True when higher is better
    ("ingest_vps", "ingest vec/s", True),
    ("open_s", "open → 1st result", False),
    ("cold_s", "import + open → 1st result", False),
    ("qps_single", "single q/s", True),
    ("qps_single_at", "single q/s at target recall (interp.)", True),
    ("qps_batch", "batch q/s", True),
    ("f1_qps", "filter 1% q/s", True),
    ("f10_qps", "filter 10% q/s", True),
    ("rss_mb", "RSS", False),
    ("disk_mb", "disk", False),
)


def system_meta(system: str) -> dict:
    cls = adapter_class(system)
    return {
        "kind": cls.kind,
        "knob_name": cls.knob_name,
        "batch_api": cls.batch_api,
        "library": cls.library,
        "notes": cls.notes,
    }


def counterparts(system: str, sysres: dict) -> tuple[str, ...]:
    if system in OWN_MODES:
        return ("vecstore-flat",)
    if system in COUNTERPARTS:
        return COUNTERPARTS[system]
    return ("vecstore-flat",) if sysres.get("kind") == "exact" else ("vecstore-ivfpq",)


def chosen_point(sysres: dict) -> dict | None:
    q = sysres.get("query") or {}
    for p in q.get("curve") or []:
        if p["knob"] == q.get("chosen_knob"):
            return p
    return None


def at_recall(curve: list[dict], target: float, key: str = "qps_single") -> float | None:
    """``key`` at exactly recall ``target``: log-linear between the two sweep points around
    it (a sweep's steps are coarse: nprobe 64 -> 128 halves the speed), the first point if it
    already reaches the target, None if none does."""
    pts = [p for p in curve if p.get(key)]
    if not pts:
        return None
    if pts[0]["recall"] >= target:
        return pts[0][key]
    for lo, hi in zip(pts, pts[1:]):
        if lo["recall"] < target <= hi["recall"]:
            w = (target - lo["recall"]) / (hi["recall"] - lo["recall"])
            return math.exp(math.log(lo[key]) + w * (math.log(hi[key]) - math.log(lo[key])))
    return None


def figures(sysres: dict, target: float = 0.95) -> dict:
    """The headline figures of one system: rates, open time, memory, disk (None if absent)."""
    build, q = sysres.get("build") or {}, sysres.get("query") or {}
    p = chosen_point(sysres) or {}
    f = q.get("filtered") or {}
    mb = build.get("disk_bytes")
    return {
        "ingest_vps": build.get("vectors_per_s"),
        "open_s": (sysres.get("open") or {}).get("first_query_s"),
        "cold_s": (sysres.get("open") or {}).get("total_s"),
        "qps_single": p.get("qps_single"),
        "qps_single_at": at_recall(q.get("curve") or [], target),
        "qps_batch": p.get("qps_batch"),
        "batch_n": p.get("n_batch"),
        "recall": p.get("recall"),
        "knob": q.get("chosen_knob"),
        "reached_target": q.get("reached_target"),
        "f1_qps": (f.get("f1") or {}).get("qps"),
        "f10_qps": (f.get("f10") or {}).get("qps"),
        "rss_mb": q.get("rss_mb"),
        "disk_mb": None if mb is None else mb / 2**20,
    }


def status(sysres: dict) -> str | None:
    """Why a system has no figures (skipped or failed), or None when it ran."""
    for part in (sysres, sysres.get("build") or {}, sysres.get("query") or {}):
        if "skipped" in part:
            return "skipped: " + part["skipped"]
        if "error" in part:
            return "failed: " + part["error"]
    if "query" not in sysres:
        return "not measured (the run stopped before its queries)"
    return None


def ratios(res: dict) -> dict:
    """vecstore / peer for every measure, per dataset: a row per (peer, vecstore system) pair
    of ``counterparts``; vecstore's compressed modes get rows against its exact scan, read
    the other way round (mode / vecstore-flat)."""
    target = res["settings"]["target"]
    out: dict = {}
    for name, entry in res["datasets"].items():
        systems = entry["systems"]
        out[name] = []
        for system, sysres in systems.items():
            if (system in VECSTORE and system not in OWN_MODES) or status(sysres):
                continue
            for vs in counterparts(system, sysres):
                ref = systems.get(vs)
                if not ref or status(ref):
                    continue
                a, b = figures(ref, target), figures(sysres, target)
                if system in OWN_MODES:  # the mode over the exact scan
                    a, b = b, a
                row = {"peer": system, "vs": vs}
                for key, _title, _hib in MEASURES:
                    row[key] = a[key] / b[key] if a[key] and b[key] else None
                row["recall_vecstore"], row["recall_peer"] = a["recall"], b["recall"]
                out[name].append(row)
    return out


def one_line(sysres: dict) -> str:
    s = status(sysres)
    if s:
        return s
    f = figures(sysres)
    return (
        f"ingest {f['ingest_vps']:,.0f} vec/s, recall {f['recall']:.3f} at {f['knob']}, "
        f"single {f['qps_single']:,.0f} q/s, batch {f['qps_batch'] or float('nan'):,.0f} q/s, "
        f"RSS {f['rss_mb']:,.0f} MB"
    )


def _x(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.2f}×" if v < 10 else f"{v:.0f}×"


def _mb(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f} MB"


def _knob(sysres: dict, f: dict) -> str:
    if sysres.get("kind") == "exact":
        return "exact"
    mark = "" if f["reached_target"] else " (best reached)"
    return f"{sysres.get('knob_name')}={f['knob']}{mark}"


def plot(name: str, entry: dict, target: float, path: Path) -> bool:
    """recall@10 against QPS relative to vecstore-flat (same mode, same run), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = entry["systems"]
    base = figures(systems.get("vecstore-flat") or {})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=False)
    drawn = False
    for ax, mode in zip(axes, ("single", "batch")):
        ref = base.get(f"qps_{mode}")
        if not ref:
            ax.set_visible(False)
            continue
        peers = [x for x in systems if x not in VECSTORE]
        for system, sysres in systems.items():
            curve = (sysres.get("query") or {}).get("curve") or []
            pts = [p for p in curve if p.get(f"qps_{mode}")]
            if status(sysres) or not pts:
                continue
            xs = [p["recall"] for p in pts]
            ys = [p[f"qps_{mode}"] / ref for p in pts]
            exact = sysres.get("kind") == "exact"
            marker = "s" if exact else "o"
            if system in VECSTORE:  # heavy lines, told apart by shade and marker
                color, width = VECSTORE_STYLE.get(system, ("red", "o"))[0], 2.6
                marker = "s" if exact else VECSTORE_STYLE.get(system, ("red", "o"))[1]
            else:
                color, width = plt.cm.tab10(peers.index(system) % 10), 1.3
            ax.plot(
                xs, ys, "" if exact else "-", marker=marker, ms=7 if exact else 5,
                lw=width, label=system, color=color,
            )  # fmt: skip
            drawn = True
        ax.axvline(target, color="grey", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel(f"{mode} q/s ÷ vecstore-flat {mode} q/s")
        ax.set_title(f"{name}: {'single queries' if mode == 'single' else 'one batched call'}")
        ax.grid(True, which="both", alpha=0.3)
    if not drawn:
        plt.close(fig)
        return False
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _datasets_flag(settings: dict) -> str:
    """`` --datasets ...`` when the run was not over the default datasets."""
    given = settings.get("datasets")
    return "" if not given or given == "glove,wordnet,synthetic-1m" else f" --datasets {given}"


def _env_lines(res: dict) -> list[str]:
    env, s = res["environment"], res["settings"]
    pk = env["packages"]
    libs = ", ".join(f"{k} {v}" for k, v in pk.items() if v)
    missing = ", ".join(k for k, v in pk.items() if not v)
    return [
        f"- **Run:** {env['date']}, vecstore at git `{env['git_head']}` (source sha1 "
        f"`{env['vecstore_source_sha1']}`), `python bench/compare_peers.py"
        f"{' --quick' if s.get('quick') else ''}{_datasets_flag(s)}`.",
        f"- **Machine:** {env['cpu']}, {env['cores']} cores, {env['memory_gib']} GiB, "
        f"{env['platform']}, Python {env['python']}. Shared with other jobs: load average "
        f"{env['loadavg_start'][0]:.1f} at the start, {env.get('loadavg_end', [math.nan])[0]:.1f} "
        "at the end.",
        f"- **Threads:** {env['threads']} for every system: "
        + ", ".join(f"`{k}={v}`" for k, v in env["thread_env"].items())
        + f"; faiss `omp_set_num_threads({env['threads']})`; hnswlib `num_threads="
        f"{env['threads']}` for batches and 1 for single queries; Chroma, LanceDB and Milvus "
        f"Lite use their own pools, whose default is the core count ({env['cores']}).",
        f"- **Packages:** {libs}." + (f" Not installed: {missing}." if missing else ""),
        f"- **Protocol:** systems are built one after the other, then measured in "
        f"{s['rounds']} rounds, round-robin over the systems (so that the shared machine's "
        f"changing load falls on all of them), each round a fresh process to open the store "
        f"and one to query it. A timed pass runs queries until all are done or {s['budget']} s "
        f"have passed (at least {s['min_q']} queries; {s.get('scale_min_q')} at 1M); speeds "
        f"and open times are medians over all passes of all rounds; faiss and vecstore "
        f"single queries are timed at {s['threads']} threads and at 1, interleaved, keeping "
        "the faster. "
        f"The matched-recall point of an approximate system is the first knob setting (in "
        f"increasing order) whose recall@10 reaches {s['target']}; filtered queries run there.",
    ]


def write(res: dict, doc: Path, img: Path) -> None:
    target = res["settings"]["target"]
    L = [
        "<!-- Generated by bench/compare_peers.py from bench/results/peers.json: do not edit "
        "by hand, rerun the script. -->",
        "",
        "# Benchmarks: vecstore beside its peers",
        "",
        "One run of `python bench/compare_peers.py` on this project's machine: every system "
        "ingests the same vectors, is reopened in a fresh process and answers the same "
        "held-out queries. Each figure below is a **ratio vecstore / peer measured in the "
        "same run** (the machine is shared and noisy, so absolute speeds are not comparable "
        "between runs; they are in `bench/results/peers.json`).",
        "",
        *_env_lines(res),
        "",
        "## How to read the tables",
        "",
        "- Exact peers are compared with `vecstore-flat` (exact search); approximate peers "
        "with `vecstore-ivfpq` and, for the graph indexes (hnswlib, Chroma) and the other "
        "approximate stores, with `vecstore-hnsw` too (a row per pair, the `vs` column); "
        "faiss's scalar quantizer with `vecstore-int8`. Each approximate system is taken at its "
        f"fastest setting reaching recall@10 ≥ {target} (the first in its knob sweep; if none "
        'does, its best recall, marked "best reached"). vecstore\'s int8 and binary vectors '
        "also get a table of their own against its float32 exact scan.",
        "- The sweeps are coarse (nprobe 32, 64, 128...), so the first setting reaching the "
        "target can overshoot it by a different margin for each system (the recall column "
        "shows by how much); the column *single q/s at target recall (interp.)* compares "
        "single-query speeds at exactly the target, log-linear between the two settings "
        "around it.",
        "- For rates (vectors/s, queries/s) a ratio **above 1** means vecstore is faster. For "
        "the open time, resident memory and disk a ratio **below 1** means vecstore is faster "
        "or smaller.",
        "- *ingest*: loading all rows through the system's API, plus whatever makes them "
        "durable and indexed (vecstore: `add` with fsync per commit, then `create_index` for "
        "IVF-PQ; faiss / hnswlib: build, `write_index` / `save_index` and an fsync; Chroma, "
        "Lance, sqlite-vec, Qdrant, Milvus: their own writes, index builds and flush).",
        "- *open → first result*: a fresh process whose library is already imported opens the "
        "persisted store and answers one query (vecstore answers an exact first query with "
        "NumPy/BLAS while its Numba kernels load on a background thread; its other indexes "
        "wait for the kernels, and that is counted here); *import + open → first result* adds "
        "importing the library. The page cache is warm.",
        "- *single-query q/s*: one query per call. *batched q/s*: many queries in one call, "
        "where the API has one (n/a otherwise): all of the dataset's queries, or, for a slower "
        "system, as many as its single-query speed answers in five times the pass budget "
        "(the per-system table gives the batch size). Batch sizes therefore differ between "
        "systems, and this matters for faiss's Flat index, which takes its BLAS path only "
        "from nq·d ≥ 128,000 (333 queries at 384-d): below that its batch is little faster "
        "than its single queries.",
        "- *filtered*: single queries with an equality filter on an integer metadata field "
        "keeping 1% (`c100 = v`) or 10% (`c10 = v`) of the rows, k = 10.",
        "- *RSS*: resident memory of the querying process and its children (Milvus Lite "
        "serves from a child process) after opening and running every query.",
        "",
        "## Datasets",
        "",
        "| dataset | vectors | dim | queries | source |",
        "|---|---|---|---|---|",
    ]
    for name, entry in res["datasets"].items():
        i = entry["info"]
        L.append(f"| {name} | {i['n']:,} | {i['d']} | {i['nq']:,} | {i['source']} |")
    L += [
        "",
        "All vectors are normalised to unit length and searched by cosine (or inner product, "
        "the same ranking); queries are held out of the index; ground truth is exact top-10.",
        "",
        "## Systems",
        "",
        "| system | kind | knob | configuration |",
        "|---|---|---|---|",
    ]
    first = next(iter(res["datasets"].values()), {"systems": {}})
    for system in SYSTEMS:
        meta = first["systems"].get(system) or system_meta(system)
        L.append(f"| {system} | {meta['kind']} | {meta['knob_name'] or '-'} | {meta['notes']} |")
    for name, entry in res["datasets"].items():
        L += _dataset_section(name, entry, res["ratios"].get(name, {}), target, img, doc)
    L += _reading(res)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(L) + "\n")


def _dataset_section(name, entry, rat, target, img, doc) -> list[str]:
    systems = entry["systems"]
    i = entry["info"]
    L = ["", f"## {name}: {i['n']:,} × {i['d']}", ""]
    if rat:
        L += [
            "Ratios vecstore / peer:",
            "",
            "| peer | vs | recall (vecstore / peer) | "
            + " | ".join(t for _, t, _ in MEASURES)
            + " |",
            "|---|---|---|" + "---|" * len(MEASURES),
        ]
        own = [row for row in rat if row["peer"] in OWN_MODES]
        for row in rat:
            if row["peer"] in OWN_MODES:
                continue
            rv, rp = row["recall_vecstore"], row["recall_peer"]
            cells = " | ".join(_x(row[k]) for k, _, _ in MEASURES)
            L.append(f"| {row['peer']} | {row['vs']} | {rv:.3f} / {rp:.3f} | {cells} |")
        L.append("")
        if own:
            L += [
                "vecstore's compressed vectors against its own exact scan (mode / vecstore-flat; "
                "recall is the mode's):",
                "",
                "| mode | recall | " + " | ".join(t for _, t, _ in MEASURES) + " |",
                "|---|---|" + "---|" * len(MEASURES),
            ]
            for row in own:
                cells = " | ".join(_x(row[k]) for k, _, _ in MEASURES)
                L.append(f"| {row['peer']} | {row['recall_vecstore']:.3f} | {cells} |")
            L.append("")
    L += [
        "Per system (recall, results returned under filters, memory, disk):",
        "",
        "| system | setting | recall@10 | queries per batch | filter 1%: mean results (recall) "
        "| filter 10%: mean results (recall) | RSS | disk |",
        "|---|---|---|---|---|---|---|---|",
    ]
    skipped = []
    for system, sysres in systems.items():
        s = status(sysres)
        if s:
            skipped.append((system, sysres, s))
            continue
        f = figures(sysres)
        flt = (sysres.get("query") or {}).get("filtered") or {}
        cells = []
        for fname in FILTERS:
            r = flt.get(fname) or {}
            cells.append(f"{r.get('mean_results', math.nan):.2f} ({r.get('recall', math.nan):.3f})")
        L.append(
            f"| {system} | {_knob(sysres, f)} | {f['recall']:.3f} | {f['batch_n'] or 'n/a'} | "
            f"{cells[0]} | {cells[1]} | {_mb(f['rss_mb'])} | {_mb(f['disk_mb'])} |"
        )
    png = img / f"peers-{name}.png"
    if plot(name, entry, target, png):
        same = png.parent.resolve() == (doc.parent / "img").resolve()
        rel = Path("img") / png.name if same else png
        L += [
            "",
            f"![recall against queries per second, {name}]({rel.as_posix()})",
            "",
            "Queries per second relative to vecstore-flat in the same mode and run (log scale) "
            "against recall@10, over each approximate system's knob; exact systems are single "
            f"points. The dotted line is the target recall {target}.",
        ]
    if skipped:
        L += ["", "Not measured on this dataset:", ""]
        if any("--scale-systems" in st for _, _, st in skipped):
            L += [
                "To keep the default run near an hour on this 2-core machine, the 1M set runs "
                "only `--scale-systems` (vecstore and faiss by default); for each other system "
                "the line below gives what this run measured for it on WordNet (same dimension) "
                "and what that extrapolates to at 1M. Pass `--scale-systems` to run more.",
                "",
            ]
        for system, sysres, s in skipped:
            part = (sysres.get("build") or {}).get("partial")
            extra = ""
            if part:
                extra = f" (measured before stopping: {part['vectors_per_s']:,.0f} vectors/s)"
            L.append(f"- **{system}**: {s}{extra}")
    return L


def _reading(res: dict) -> list[str]:
    """Where vecstore wins and loses, read off the ratio tables by the script (a difference
    under 10% counts as a tie on this machine)."""
    L = ["", "## Reading", "", "Generated from the ratios above.", ""]
    for name, rat in res["ratios"].items():
        if not rat:
            continue
        L += [f"**{name}**", ""]
        for row in rat:
            if row["peer"] in OWN_MODES:
                continue
            wins, losses = [], []
            for key, title, higher_better in MEASURES:
                v = row[key]
                if v is None:
                    continue
                factor = v if higher_better else 1 / v  # > 1: vecstore better
                if abs(math.log(factor)) < math.log(1.1):
                    continue
                if factor > 1:
                    wins.append(f"{title} {factor:.1f}×")
                else:
                    losses.append(f"{title} {1 / factor:.1f}×")
            parts = []
            if losses:
                parts.append("the peer is better on " + ", ".join(losses))
            if wins:
                parts.append("vecstore is better on " + ", ".join(wins))
            said = "; ".join(parts) or "within 10% on every measure"
            L.append(f"- **{row['peer']}** against {row['vs']}: {said}.")
        vs_open = (res["datasets"][name]["systems"].get("vecstore-flat") or {}).get("open") or {}
        if vs_open.get("first_query_s"):
            share = vs_open["open_s"] / vs_open["first_query_s"]
            L.append(
                "- vecstore-flat's *open → first result* is almost all its first search: "
                f"`vecstore.open` + `get_collection` are {100 * share:.1f}% of it."
            )
        systems = res["datasets"][name]["systems"]
        capped = [
            f"{x} {figures(r)['recall']:.3f}"
            for x, r in systems.items()
            if not status(r) and r.get("kind") == "ann" and not figures(r)["reached_target"]
        ]
        if capped:
            L.append(
                f"- Never reaching recall {res['settings']['target']} at any setting (their rows "
                "compare best points, and the interpolated column is n/a): "
                + ", ".join(capped)
                + ". Their recall stops rising with the knob: the noise of their codes (PQ, or "
                "one bit per dimension, which 50-d vectors cannot spare) is more than the "
                "re-ranking of the candidates removes."
            )
        ff = systems.get("faiss-flat") or {}
        d = res["datasets"][name]["info"]["d"]
        if not status(ff) and (figures(ff)["batch_n"] or 10**9) * d < 128_000:
            L.append(
                f"- faiss-flat's batch here was {figures(ff)['batch_n']} queries, under the "
                f"{-(-128_000 // d)} at which faiss switches to BLAS at {d}-d: its batched "
                "ratio compares vecstore's batch kernel with faiss's non-BLAS path."
            )
        short = []
        for system, sysres in systems.items():
            flt = (sysres.get("query") or {}).get("filtered") or {}
            for fname, r in flt.items():
                if r.get("mean_results", 10) < 9.95:
                    short.append(f"{system} {r['mean_results']:.2f} under the {fname[1:]}% filter")
        if short:
            L.append(
                "- Fewer than k = 10 results on average under a filter: " + "; ".join(short) + "."
            )
        L.append("")
    L += [
        "Caveats: one run on a shared 2-core machine; the page cache is warm for every open; "
        "faiss and hnswlib are libraries, not stores (their filters use metadata kept beside "
        'the index by this benchmark, and their "open" loads the whole index into memory); '
        "Qdrant's local mode is its pure-Python engine for tests, not the Qdrant server.",
    ]
    return L
