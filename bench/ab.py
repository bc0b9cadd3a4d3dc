"""A/B of two git revisions on one comparison script, alternating them run by run.

    python bench/ab.py OLD NEW --script compare_exact|compare_ann|compare_store
                       [--rounds 3] [--out FILE] [-- script args...]

Checks out OLD and NEW as detached worktrees under $TMPDIR/vecstore-ab/<commit> (kept and
reused by later runs) and runs each revision's own bench/<script>.py in a fresh process,
with cwd and PYTHONPATH set to its worktree and the environment otherwise identical (thread
counts included). The first time a worktree meets a script, one small untimed run fills its
Numba cache (and builds compare_store's cached stores, kept per revision). Then `--rounds`
rounds, OLD NEW, NEW OLD, OLD NEW ..., so that a drift in the shared machine's load falls
on both alike.

Prints, per metric the script headlines, the median over rounds of each revision and
new/old: above 1 means new is faster for a rate (q/s, vec/s), slower for a time (s, ms).
"ref" is new/old of what the script times beside vecstore in the same process (faiss,
sqlite3, numpy: code both revisions share), so it shows how the load moved between runs;
"vs ref" is new/old of vecstore / reference taken run by run, which cancels most of that;
"rounds" the lowest and highest new/old of a single round (how far one round can mislead).
Writes every sample and each run's own output to bench/results/ab-<script>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(tempfile.gettempdir()) / "vecstore-ab"

# -- what each script headlines: name -> (value, unit, higher_is_better, reference) ------

ROW = re.compile(r"^(.{24}) (\S+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+x\s+([\d.]+)$")


def exact_metrics(stdout: str, _: dict | None) -> dict:
    """compare_exact prints a table and writes no JSON: vecstore q/s per case, faiss q/s as
    the reference, and the lowest recall over the cases."""
    out, recalls = {}, []
    for line in stdout.splitlines():
        if m := ROW.match(line):
            case, _, qv, qf, rec = m.groups()
            out[case.strip()] = (float(qv), "q/s", True, float(qf))
            recalls.append(float(rec))
    out["recall@10 vs faiss (min)"] = (min(recalls), "recall", True, None)
    return out


def ann_metrics(_: str, res: dict) -> dict:
    out = {
        "train IVF-PQ 8-bit": (res["train"]["vecstore_s"], "s", False, res["train"]["faiss_s"]),
        "train IVF-PQ 4-bit": (res["train"]["vecstore_4bit_s"], "s", False, None),
    }
    refs = {"vecstore": "faiss_ivfpq_refine", "vecstore_4bit": "faiss_fastscan_refine"}
    for mode, best in res["at_recall_0.95"].items():
        # The script's headline: each system at the first nprobe reaching recall 0.95. Its
        # nprobe is a row too: the same nprobe in both revisions means the same work.
        for name, ref in refs.items():
            if p := best[name]:
                f = best[ref] or {}
                out[f"{name} {mode} at recall .95"] = (p["qps"], "q/s", True, f.get("qps"))
                out[f"{name} {mode} nprobe there"] = (p["nprobe"], "nprobe", False, None)
    api = res["api"]
    out["api build (add + train)"] = (api["build_s"], "s", False, None)
    for key, what in (
        ("query_p50_ms", "api query p50"),
        ("query_p95_ms", "api query p95"),
        ("exact_p50_ms", "api exact query p50"),
        ("filtered_1pct_p50_ms", "api filtered 1% p50"),
        ("filtered_after_exact_p50_ms", "api filtered after exact p50"),
    ):
        out[what] = (api[key], "ms", False, None)
    out["api recall"] = (api["recall"], "recall", True, None)
    if res.get("scale"):
        out["scale query rate"] = (res["scale"]["qps"], "q/s", True, None)
        out["scale RSS"] = (res["scale"]["after"]["VmRSS"], "MiB", False, None)
    return out


def store_metrics(_: str, res: dict) -> dict:
    """Every row of compare_store's table but those repeating a vecstore figure against
    faiss at its other thread count; a reference that is vecstore itself at another size
    (a scaling row) is no control, so it is left out."""
    out = {}
    for r in res["results"]:
        key = r["key"].replace(".faiss.vecstore1t", " (1 Numba thread)")
        if ".faiss" in key or key == "import.lazy":
            continue
        ref = r["reference"]["median"] if r["reference"] and not r["scaling"] else None
        unit = "recall" if key.startswith("recall") else r["unit"]
        out[key] = (r["vecstore"]["median"], unit, unit not in ("s", "MiB"), ref)
        if "recall" in r and unit != "recall":
            out[key + " recall"] = (r["recall"]["strict"], "recall", True, None)
    return out


# script -> (writes JSON through --out, extra args of the untimed warm-up run, metrics)
SCRIPTS = {
    "compare_exact": (False, ["--n", "20000", "--repeats", "1", "--single", "5"], exact_metrics),
    "compare_ann": (
        True,
        ["--n", "25000", "--nq", "20", "--repeats", "1", "--scale", "0"],
        ann_metrics,
    ),
    "compare_store": (
        True,
        ["--repeats", "1", "--single", "10", "--single-adds", "10"],
        store_metrics,
    ),
}


# -- running ---------------------------------------------------------------------------


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def worktree(rev: str) -> tuple[str, Path]:
    """``(commit, path)`` of a detached worktree of ``rev``, made if missing."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = CACHE / sha[:12] / "tree"
    if not (tree / ".git").exists() or git("rev-parse", "HEAD", cwd=tree) != sha:
        shutil.rmtree(tree.parent, ignore_errors=True)  # with its caches and warm-up marks
        git("worktree", "prune")
        git("worktree", "add", "--detach", str(tree), sha)
    return sha, tree


def environ(tree: Path) -> dict:
    """This process's environment (thread counts included) with the worktree first on the
    path: its vecstore wins over the editable install."""
    path = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def run(script: str, tree: Path, args: list[str], writes_json: bool) -> dict:
    """One run of the worktree's script in a fresh process: seconds, output, its JSON."""
    if script == "compare_store":  # its cached stores, one set per revision
        args = ["--cache-dir", str(tree.parent / "store-cache"), *args]
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, f"bench/{script}.py", *args]
        cmd += ["--out", out.name] if writes_json else []
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=tree, env=environ(tree), capture_output=True, text=True)
        took = time.perf_counter() - t
        if p.returncode:
            sys.exit(f"{' '.join(cmd)} (in {tree}) failed:\n{p.stderr[-3000:]}")
        res = json.loads(Path(out.name).read_text()) if writes_json else None
    return {
        "wall_s": took,
        "loadavg_after": os.getloadavg(),
        "stdout": p.stdout,
        "stderr": p.stderr,
        "json": res,
    }


def check_import(tree: Path) -> None:
    """The worktree's vecstore, not the editable install, must be the one imported."""
    cmd = [sys.executable, "-c", "import vecstore; print(vecstore.__file__)"]
    got = subprocess.run(
        cmd, cwd=tree, env=environ(tree), capture_output=True, text=True, check=True
    ).stdout.strip()
    if not Path(got).is_relative_to(tree):
        sys.exit(f"{tree} imports vecstore from {got}")


def summarise(runs: list[dict], name: str) -> dict:
    """Medians over the runs of each side; the ratios new/old of the value, of the reference,
    and of value / reference (which cancels the load the run saw); and new/old per round."""
    unit, higher = next(r["metrics"][name][1:3] for r in runs if name in r["metrics"])
    row: dict = {"unit": unit, "higher_is_better": higher}
    for side in ("old", "new"):
        got = [r["metrics"][name] for r in runs if r["side"] == side and name in r["metrics"]]
        row[side] = statistics.median(v for v, *_ in got) if got else None
        paired = [(v, ref) for v, _, _, ref in got if ref]
        row[f"ref_{side}"] = statistics.median(ref for _, ref in paired) if paired else None
        row[f"rel_{side}"] = statistics.median(v / ref for v, ref in paired) if paired else None

    def ratio(new, old):
        return new / old if new is not None and old else None

    by_round: dict = {}
    for r in runs:
        if name in r["metrics"]:
            by_round.setdefault(r["round"], {})[r["side"]] = r["metrics"][name][0]
    row["per_round"] = [ratio(b.get("new"), b.get("old")) for _, b in sorted(by_round.items())]
    row["new_over_old"] = ratio(row["new"], row["old"])
    row["ref"] = ratio(row["ref_new"], row["ref_old"])
    row["vs_ref"] = ratio(row["rel_new"], row["rel_old"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--script", required=True, choices=SCRIPTS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    a, script_args = ap.parse_args(argv[:cut]), argv[cut + 1 :]
    writes_json, warm_args, metrics = SCRIPTS[a.script]
    out_path = a.out or REPO / "bench" / "results" / f"ab-{a.script}.json"

    revs = {}
    for side, rev in (("old", a.old), ("new", a.new)):
        sha, tree = worktree(rev)
        check_import(tree)
        revs[side] = {"rev": rev, "commit": sha, "tree": str(tree)}
    for side, r in revs.items():
        warm = Path(r["tree"]).parent / f"warm-{a.script}"  # once per worktree and script
        if not warm.exists():
            t = time.perf_counter()
            run(a.script, Path(r["tree"]), script_args + warm_args, writes_json)
            warm.touch()
            print(f"warm-up {side} {r['commit'][:10]}: {time.perf_counter() - t:.0f} s", flush=True)

    runs = []
    load0 = os.getloadavg()
    for i in range(a.rounds):
        for side in ("old", "new") if i % 2 == 0 else ("new", "old"):
            got = run(a.script, Path(revs[side]["tree"]), script_args, writes_json)
            got.update(round=i, side=side, metrics=metrics(got["stdout"], got["json"]))
            runs.append(got)
            print(f"round {i + 1}/{a.rounds} {side}: {got['wall_s']:.0f} s", flush=True)

    names = dict.fromkeys(name for r in runs for name in r["metrics"])
    summary = {name: summarise(runs, name) for name in names}
    print(
        f"\n{a.script}: old {a.old} ({revs['old']['commit'][:10]}) vs new {a.new} "
        f"({revs['new']['commit'][:10]}), {a.rounds} rounds, medians; load avg "
        f"{load0[0]:.2f} -> {os.getloadavg()[0]:.2f}\n"
        "new/old > 1: new faster for rates, slower for times (s, ms) and memory (MiB); ref:\n"
        "the same for the reference; vs ref: new/old of vecstore / reference in each run;\n"
        "rounds: the lowest and highest new/old of one round\n"
    )
    w = max(map(len, summary))
    print(f"{'metric':<{w}}  unit         old       new  new/old    ref  vs ref  rounds")
    for name, r in summary.items():
        ratios = "".join(
            f"{r[k]:>{width}.3f}" if r[k] else " " * width
            for k, width in (("new_over_old", 9), ("ref", 7), ("vs_ref", 8))
        )
        old, new = (f"{r[k]:>9.4g}" if r[k] is not None else f"{'-':>9}" for k in ("old", "new"))
        spread = [x for x in r["per_round"] if x is not None]
        spread = f"  {min(spread):.2f}-{max(spread):.2f}" if spread else ""
        print(f"{name:<{w}}  {r['unit']:<6} {old} {new}{ratios}{spread}")

    out_path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "script": a.script,
        "script_args": script_args,
        "rounds": a.rounds,
        "revisions": revs,
        "env": {k: v for k, v in os.environ.items() if re.match(r"(NUMBA|OMP|OPENBLAS|MKL)_", k)},
        "cpus": os.cpu_count(),
        "loadavg": [load0, os.getloadavg()],
        "summary": summary,
        "runs": runs,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out_path.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    print(f"\nsamples written to {out_path}")


if __name__ == "__main__":
    main()
