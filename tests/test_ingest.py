"""Collection.ingest: files, folders and globs into rows with provenance; unchanged files cost
nothing; changed files are replaced atomically, even when the writer is killed midway."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import vecstore
from tests.conftest import hashing_encoder
from vecstore.chunking import approximate_tokens

ROOT = Path(__file__).resolve().parent.parent

PARAGRAPHS = [
    "Segments are immutable files. Each one is written once and never changed.",
    "The catalog is a SQLite database in WAL mode. It names every segment file.",
    "Compaction rewrites segments. It drops deleted vectors from the disk.",
    "Readers see one snapshot per query. Writers take turns through a lock.",
]


def write_corpus(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "nested").mkdir(exist_ok=True)
    (root / ".hidden").mkdir(exist_ok=True)
    files = {
        "txt": root / "notes.txt",
        "md": root / "nested" / "guide.md",
        "jsonl": root / "nested" / "records.jsonl",
        "csv": root / "table.csv",
    }
    files["txt"].write_text("\n\n".join(PARAGRAPHS))
    files["md"].write_text("# Guide\n\n" + "\n\n".join(reversed(PARAGRAPHS)) + "\n")
    files["jsonl"].write_text(
        json.dumps({"id": "r1", "text": "a kitten naps in the sun", "year": 2020, "tags": ["a"]})
        + "\n\n"
        + json.dumps({"id": 7, "text": "stock markets fell", "nested": {"x": [1, 2]}, "n": None})
        + "\n"
    )
    files["csv"].write_text(
        "id,name,text,score,count\n"
        "c1,alpha,the violin has strings,3.5,12\n"
        'c2,beta,"glaciers move, slowly",,x\n'
    )
    (root / ".hidden" / "secret.txt").write_text("never ingested")
    (root / "image.png").write_bytes(b"\x89PNG")
    return files


def store(tmp_path, **kwargs) -> vecstore.Database:
    return vecstore.open(tmp_path / "store", **kwargs)


def test_every_format_with_provenance(tmp_path):
    files = write_corpus(tmp_path / "docs")
    with store(tmp_path) as db:
        c = db.create_collection("docs", encoder=hashing_encoder)
        res = c.ingest(tmp_path / "docs", chunk_size=160, chunk_overlap=40, id_field="id")
        assert (res.files, res.new, res.changed, res.unchanged) == (4, 4, 0, 0)
        assert res.rows_written == c.count() and res.rows_deleted == 0
        assert sorted(res.written) == sorted(str(f.resolve()) for f in files.values())

        for kind in ("txt", "md"):
            src = str(files[kind].resolve())
            text = files[kind].read_text()
            got = c.get(where={"source": src})
            assert len(got) >= 3
            for i, (id_, doc, meta) in enumerate(zip(got.ids, got.documents, got.metadata)):
                assert id_ == f"{src}#{i}" and meta["chunk"] == i
                assert doc == text[meta["start"] : meta["end"]] and len(doc) <= 160
                assert meta["content_hash"] == hashlib.sha256(doc.encode()).hexdigest()
                assert meta["source"] == src and len(meta["source_hash"]) == 64
            # Every sentence is inside some chunk.
            for sentence in " ".join(PARAGRAPHS).split(". "):
                assert any(sentence.rstrip(".") in d for d in got.documents)

        rec = c.get(["r1", "7"])
        assert rec.documents == ["a kitten naps in the sun", "stock markets fell"]
        src = str(files["jsonl"].resolve())
        assert rec.metadata[0] == {
            "year": 2020,
            "tags": ["a"],
            "source": src,
            "line": 1,
            "content_hash": hashlib.sha256(b"a kitten naps in the sun").hexdigest(),
            "source_hash": rec.metadata[0]["source_hash"],
        }
        # nested values are kept as JSON text; null stays None; the line skips blank ones
        assert rec.metadata[1]["nested"] == '{"x": [1, 2]}' and rec.metadata[1]["n"] is None
        assert rec.metadata[1]["line"] == 3

    with store(tmp_path) as db:
        c = db.get_collection("docs", encoder=hashing_encoder)
        assert c.get(["c1"]).documents == ["the violin has strings"]
        # the same file again, without an id field: other settings, so its rows are replaced
        res = c.ingest(files["csv"])
        assert (res.changed, res.rows_written, res.rows_deleted) == (1, 2, 2)
        assert c.get(["c1", "c2"]).ids == []
        src = str(files["csv"].resolve())
        got = c.get([f"{src}:2", f"{src}:3"])
        assert got.documents == ["the violin has strings", "glaciers move, slowly"]
        # numbers are numbers, empty cells None, other text stays text
        assert [(m["name"], m["score"], m["count"]) for m in got.metadata] == [
            ("alpha", 3.5, 12),
            ("beta", None, "x"),
        ]
        assert c.count({"score": {"$gt": 3}}) == 1
        assert c.query("violin strings", k=1).ids == [f"{src}:2"]


def test_unchanged_files_write_nothing(tmp_path):
    write_corpus(tmp_path / "docs")
    calls = []

    @vecstore.encoders.named("counting", version="1")
    def counting(texts):
        calls.append(len(texts))
        return hashing_encoder(texts)

    with store(tmp_path) as db:
        c = db.create_collection("docs", encoder=counting)
        first = c.ingest([tmp_path / "docs"], id_field="id")
        before = c.get(include_vectors=True)
        wal = db.path / "catalog.db-wal"
        size = wal.stat().st_size
        calls.clear()
        again = c.ingest([tmp_path / "docs"], id_field="id")
        assert (again.unchanged, again.new, again.changed, again.rows_written) == (4, 0, 0, 0)
        assert calls == []  # nothing embedded
        assert wal.stat().st_size == size  # and nothing committed
        after = c.get(include_vectors=True)
        assert after.ids == before.ids and np.array_equal(after.vectors, before.vectors)
        assert first.rows_written == c.count()


def test_changed_file_is_replaced_and_others_untouched(tmp_path):
    files = write_corpus(tmp_path / "docs")
    with store(tmp_path) as db:
        c = db.create_collection("docs", encoder=hashing_encoder)
        c.ingest(tmp_path / "docs", chunk_size=160, chunk_overlap=0, id_field="id")
        src = str(files["txt"].resolve())
        old = c.count({"source": src})
        others = c.get(where={"source": {"$ne": src}})
        files["txt"].write_text("A completely new text. It is short.")
        res = c.ingest(tmp_path / "docs", chunk_size=160, chunk_overlap=0, id_field="id")
        assert (res.changed, res.unchanged, res.new) == (1, 3, 0)
        assert res.rows_written == 1 and res.rows_deleted == old - 1
        got = c.get(where={"source": src})
        assert got.documents == ["A completely new text. It is short."]
        assert c.get(where={"source": {"$ne": src}}).to_list() == others.to_list()
        # other settings make other chunks: every file is "changed"
        res = c.ingest(tmp_path / "docs", chunk_size=100, chunk_overlap=10, id_field="id")
        assert res.changed == 4
        assert db.verify().ok


def test_a_file_emptied_loses_its_rows(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("Some text here.")
    with store(tmp_path) as db:
        c = db.create_collection("docs", encoder=hashing_encoder)
        c.ingest(f)
        f.write_text("   \n")
        res = c.ingest(f)
        assert (res.changed, res.rows_deleted, c.count()) == (1, 1, 0)
        assert c.ingest(f).rows_written == 0


def test_record_ids(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"key": "x", "body": "first"}\n{"key": "y", "body": "second"}\n')
    b.write_text('{"key": "y", "body": "second, from b"}\n')
    with store(tmp_path) as db:
        c = db.create_collection("docs", encoder=hashing_encoder)
        c.ingest([a, b], id_field="key", text_field="body", metadata_fields=[])
        # an id given by two files: the later file's row wins
        assert c.get(["x", "y"]).documents == ["first", "second, from b"]
        assert c.get(["y"]).metadata[0]["source"] == str(b.resolve())
        dup = tmp_path / "dup.jsonl"
        dup.write_text(
            '{"key": "z", "body": "one"}\n{"key": "q", "body": "two"}\n{"key": "z", "body": "3"}\n'
        )
        with pytest.raises(vecstore.InvalidInput, match=r"dup.jsonl:3: id 'z' repeats .* line 1"):
            c.ingest(dup, id_field="key", text_field="body")


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "match"),
    [
        ("a.jsonl", '{"text": "ok"}\n{"text": \n', {}, r"a.jsonl:2: not valid JSON"),
        ("a.jsonl", '["not", "an object"]\n', {}, r"a.jsonl:1: expected a JSON object"),
        ("a.jsonl", '{"body": "x"}\n', {}, r"a.jsonl:1: the text field 'text' must hold a string"),
        ("a.jsonl", '{"text": "x"}\n', {"id_field": "id"}, r"a.jsonl:1: no id field 'id'"),
        ("a.jsonl", '{"text": "x", "id": [1]}\n', {"id_field": "id"}, r"id field 'id' must hold"),
        ("a.jsonl", '{"text": "x", "source": "web"}\n', {}, r"field 'source' clashes"),
        ("a.jsonl", '{"text": "x", "$bad": 1}\n', {}, r"a.jsonl:1: metadata keys must"),
        ("a.csv", "text,n\nx,1\ny,2,3\n", {}, r"a.csv:3: 3 fields; the header has 2"),
        ("a.csv", "text,text\nx,y\n", {}, r"a.csv:1: the header needs distinct"),
        ("a.txt", b"caf\xe9", {}, r"a.txt: not valid utf-8 text .* \(--encoding\)"),
        ("a.pdf", b"%PDF", {}, r"unsupported file type '.pdf'"),
    ],
)
def test_bad_input_files_name_file_and_line(tmp_path, name, content, kwargs, match):
    f = tmp_path / name
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with store(tmp_path) as db:
        c = db.create_collection("docs", encoder=hashing_encoder)
        with pytest.raises(vecstore.InvalidInput, match=match):
            c.ingest(f, **kwargs)
        assert c.count() == 0


def test_encoding_and_metadata_fields(tmp_path):
    f = tmp_path / "latin.csv"
    f.write_bytes("text,lang,extra\ncafé crème,fr,1\n".encode("latin-1"))
    with store(tmp_path) as db:
        c = db.create_collection("docs", encoder=hashing_encoder)
        c.ingest(f, encoding="latin-1", metadata_fields=["lang"])
        (meta,) = c.get().metadata
        assert c.get().documents == ["café crème"] and meta["lang"] == "fr" and "extra" not in meta
        with pytest.raises(vecstore.InvalidInput, match="unknown text encoding"):
            c.ingest(f, encoding="no-such-codec")


def test_paths_folders_and_globs(tmp_path, monkeypatch):
    files = write_corpus(tmp_path / "docs")
    monkeypatch.chdir(tmp_path)
    with store(tmp_path) as db:
        c = db.create_collection("docs", encoder=hashing_encoder)
        res = c.ingest(["docs/**/*.md", "docs/nested/guide.md", "docs/*.txt"])
        assert res.files == 2  # the same file twice counts once; hidden folders are skipped
        assert set(res.written) == {str(files["md"].resolve()), str(files["txt"].resolve())}
        with pytest.raises(vecstore.InvalidInput, match="no such file or folder"):
            c.ingest("docs/missing.txt")
        with pytest.raises(vecstore.InvalidInput, match="glob matches no"):
            c.ingest("docs/*.rst")


def test_chunking_by_tokens(tmp_path):
    f = tmp_path / "a.md"
    f.write_text("\n\n".join(PARAGRAPHS * 3))
    with store(tmp_path) as db:
        c = db.create_collection("docs", encoder=hashing_encoder)
        c.ingest(f, chunk_unit="tokens", chunk_size=20, chunk_overlap=5)
        docs = c.get().documents
        assert len(docs) > 5
        # a callable encoder has no tokenizer: words and punctuation marks are counted
        assert all(sum(approximate_tokens(d.split())) <= 20 for d in docs)


def test_ingest_needs_an_embedding_collection_and_a_writer(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("text")
    with store(tmp_path) as db:
        with pytest.raises(vecstore.InvalidInput, match="has no encoder"):
            db.create_collection("plain", dim=4).ingest(f)
        db.create_collection("docs", encoder=hashing_encoder)
        with pytest.raises(vecstore.InvalidInput, match="chunk overlap"):
            db.get_collection("docs").ingest(f, chunk_size=10, chunk_overlap=10)
    with store(tmp_path, read_only=True) as db:
        with pytest.raises(vecstore.ReadOnlyError):
            db.get_collection("docs", encoder=hashing_encoder).ingest(f)


CHILD = textwrap.dedent(
    """
    import json, sys
    import vecstore
    from tests.conftest import hashing_encoder
    from vecstore.storage.files import io_steps

    with vecstore.open(sys.argv[1], seal_rows=2) as db:
        c = db.get_collection("docs", encoder=hashing_encoder)
        res = c.ingest(sys.argv[2], chunk_size=60, chunk_overlap=0)
    print(json.dumps({"steps": io_steps(), "written": res.rows_written}))
    """
)


@pytest.mark.slow
def test_killed_midway_leaves_the_old_or_the_new_file(tmp_path):
    """Kill the re-ingest of a changed file at every step of its write path: the file's rows
    are afterwards exactly its old ones or exactly its new ones, and the store verifies."""
    f = tmp_path / "doc.md"
    old_text = "\n\n".join(PARAGRAPHS)
    new_text = "Fresh words. Another sentence here.\n\nA second paragraph, quite short."
    f.write_text(old_text)
    base = tmp_path / "base"
    with vecstore.open(base, seal_rows=2) as db:
        c = db.create_collection("docs", encoder=hashing_encoder)
        c.ingest(f, chunk_size=60, chunk_overlap=0)
        old = {(i, d) for i, d in zip(c.get().ids, c.get().documents)}
    f.write_text(new_text)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VECSTORE_FAULT", None)

    def run(path: Path, fault: str | None) -> subprocess.CompletedProcess:
        shutil.copytree(base, path)
        e = dict(env, **({"VECSTORE_FAULT": fault} if fault else {}))
        return subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(f)],
            env=e,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )

    clean = run(tmp_path / "clean", None)
    assert clean.returncode == 0, clean.stderr
    steps = json.loads(clean.stdout)["steps"]
    with vecstore.open(tmp_path / "clean", read_only=True) as db:
        got = db.get_collection("docs").get()
        new = set(zip(got.ids, got.documents))
    assert new != old and len(new) < len(old)
    assert steps >= 4
    seen = set()
    for n in range(1, steps + 1):
        path = tmp_path / f"kill{n}"
        proc = run(path, f"kill@{n}")
        assert proc.returncode in (0, -9), proc.stderr
        with vecstore.open(path) as db:
            got = db.get_collection("docs").get()
            rows = set(zip(got.ids, got.documents))
            assert rows in (old, new), f"kill@{n} left a mix"
            seen.add("new" if rows == new else "old")
            assert db.verify().ok, db.verify().problems
    assert seen == {"old", "new"}
