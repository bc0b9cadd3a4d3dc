"""Merging the rounds of the peer comparison: every system's open and query workers run once
per round, round-robin over the systems, so a change in the machine's load falls on all of
them; a figure is the median over every pass of every round.

Standard library only.
"""

from __future__ import annotations

import copy
import statistics


def _pool(dicts: list[dict]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for d in dicts:
        for key, values in d.items():
            out.setdefault(key, []).extend(values)
    return out


def _best(rates: dict[str, list[float]]) -> tuple[str, float]:
    """The thread option with the highest median rate, and that median."""
    key = max(rates, key=lambda k: statistics.median(rates[k]))
    return key, statistics.median(rates[key])


def merge_opens(samples: list[dict], warmup: dict | None) -> dict:
    good = [o for o in samples if "open_s" in o]
    if not good:
        return samples[0] if samples else (warmup or {"error": "no open sample"})
    return {
        "warmup": warmup,
        "samples": good,
        **{k: statistics.median(o[k] for o in good) for k in ("open_s", "first_query_s")},
        **{k: statistics.median(o[k] for o in good) for k in ("import_s", "total_s")},
    }


def merge_queries(rounds: list[dict]) -> dict:
    """One query result from several rounds: rates pooled per knob setting (and per thread
    option, keeping the faster); recall, result counts and the chosen knob from the first
    round (searches are deterministic); filtered figures from the rounds that chose the
    same knob; RSS the median."""
    good = [r for r in rounds if "curve" in r]
    if not good:
        return rounds[0]
    out = copy.deepcopy(good[0])
    for p in out["curve"]:
        same = [q for r in good for q in r["curve"] if q["knob"] == p["knob"]]
        rates = _pool([q["single"]["rates"] for q in same])
        p["single"] = {"rates": rates}
        p["single"]["threads"], p["qps_single"] = _best(rates)
        if "batch_samples" in p:
            p["batch_samples"] = [x for q in same for x in q.get("batch_samples", [])]
            p["qps_batch"] = statistics.median(p["batch_samples"])
        p["rounds"] = len(same)
    for name, f in out["filtered"].items():
        same = [r["filtered"][name] for r in good if r["chosen_knob"] == out["chosen_knob"]]
        f["rates"] = _pool([x["rates"] for x in same])
        f["threads"], f["qps"] = _best(f["rates"])
        f["rounds"] = len(same)
    for key in ("rss_mb", "rss_growth_mb", "rss_before_open_mb", "open_s_in_query_process"):
        out[key] = statistics.median(r[key] for r in good)
    out["rss_samples_mb"] = [r["rss_mb"] for r in good]
    out["rounds"] = len(good)
    out["failed_rounds"] = [r for r in rounds if "curve" not in r]
    return out
