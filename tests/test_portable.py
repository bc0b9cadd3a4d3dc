"""Export and import: JSON Lines and Parquet round trips are exact (vectors bit for bit,
metadata with its types), headers carry the collection's settings, bad files are refused."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import vecstore
from tests.conftest import hashing_encoder, typed
from vecstore.inputs import MAX_COMPONENT

METADATA = [
    {"b": True, "i": 1, "f": 1.0, "neg0": -0.0, "big": 2**62, "s": "é\u4e2d", "l": [1, "x", None]},
    {},
    {"none": None, "nested_list": [True, 2.5]},
]


def filled(db, name="c", n=300):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    big = MAX_COMPONENT  # the largest magnitude a vector component may have
    x[0] = [0.0, -0.0, 1e-45, -1e-38, big, -big, 1 / 3, np.float32(0.1)]  # edge values
    c = db.create_collection(name, dim=8, metric="l2")
    c.add(
        [f"id-{i}" for i in range(n)],
        vectors=x,
        documents=[None if i % 5 == 0 else f'doc {i} \u00e9\n"q"' for i in range(n)],
        metadata=[METADATA[i % 3] for i in range(n)],
    )
    c.delete(["id-3"])
    return c


def same_rows(a, b) -> None:
    ga, gb = a.get(include_vectors=True), b.get(include_vectors=True)
    assert ga.ids == gb.ids
    assert ga.documents == gb.documents
    assert [typed(m) for m in ga.metadata] == [typed(m) for m in gb.metadata]
    assert ga.vectors.tobytes() == gb.vectors.tobytes()  # bit-identical, -0.0 and all


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_round_trip_is_exact(tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"c.{fmt}"
    with vecstore.open(tmp_path / "s") as db:
        c = filled(db)
        info = c.export(out)
        assert (info.collection, info.rows, info.format) == ("c", 299, fmt)
        copy = db.import_collection(out, name="copy")
        assert (copy.collection, copy.rows) == ("copy", 299)
        same_rows(c, db.get_collection("copy"))
        assert db.get_collection("copy").metric == "l2"
    with vecstore.open(tmp_path / "t") as db2:  # another store, the exported name
        db2.import_collection(out)
        with vecstore.open(tmp_path / "s", read_only=True) as db:
            same_rows(db.get_collection("c"), db2.get_collection("c"))


def test_jsonl_layout(tmp_path):
    buf = io.BytesIO()
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("notes", encoder=hashing_encoder)
        c.add(["a"], documents=["hello world"], metadata=[{"k": 1}])
        c.export(buf)
        buf.seek(0)
        assert db.import_collection(buf, name="again").rows == 1
        assert not buf.closed  # the caller's file stays theirs
    head, row = [json.loads(line) for line in buf.getvalue().decode().splitlines()]
    assert head["format"] == "vecstore-export" and head["version"] == 1
    assert (head["collection"], head["dim"], head["metric"], head["count"]) == (
        "notes",
        16,
        "cosine",
        1,
    )
    assert head["encoder"]["kind"] == "callable" and head["encoder"]["model"] == "hashing_encoder"
    assert row["id"] == "a" and row["document"] == "hello world" and row["metadata"] == {"k": 1}
    assert np.array_equal(
        np.asarray(row["vector"], np.float32), hashing_encoder(["hello world"])[0]
    )


def test_import_keeps_the_encoder_spec_without_loading_the_model(tmp_path):
    spec = {
        "kind": "sentence-transformers",
        "model": "no-such-org/no-such-model",
        "dim": 4,
        "normalize": True,
        "max_tokens": 128,
        "query_prefix": "query: ",
        "document_prefix": "",
        "revision": None,
    }
    head = {
        "format": "vecstore-export",
        "version": 1,
        "collection": "docs",
        "dim": 4,
        "metric": "cosine",
        "encoder": spec,
    }
    f = tmp_path / "e.jsonl"
    f.write_text(
        json.dumps(head) + "\n" + json.dumps({"id": "x", "vector": [1, 0, 0, 0], "document": "d"})
    )
    with vecstore.open(tmp_path / "s") as db:
        db.import_collection(f)
        c = db.get_collection("docs")
        assert c.info().encoder == spec and c.query([1, 0, 0, 0], k=1).ids == ["x"]
    with vecstore.open(tmp_path / "s") as db:
        assert db.get_collection("docs").info().encoder == spec


def test_into_an_existing_collection(tmp_path):
    out = tmp_path / "c.jsonl"
    with vecstore.open(tmp_path / "s") as db:
        c = filled(db)
        c.export(out)
        with pytest.raises(vecstore.CollectionExists, match="upsert"):
            db.import_collection(out)
        c.update(["id-1"], documents=["changed"])
        assert db.import_collection(out, if_exists="upsert").rows == 299
        assert c.get(["id-1"]).documents == ['doc 1 \u00e9\n"q"']
        db.create_collection("d8", dim=8, metric="cosine")
        with pytest.raises(vecstore.DimensionMismatch, match="metric"):
            db.import_collection(out, name="d8", if_exists="upsert")
        with pytest.raises(vecstore.InvalidInput, match="if_exists"):
            db.import_collection(out, name="z", if_exists="replace")


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        ('{"id": "x"}\n', vecstore.InvalidInput, r"e.jsonl:1: not a vecstore export"),
        ("not json\n", vecstore.InvalidInput, r"e.jsonl:1: not valid JSON"),
        (
            '{"format": "vecstore-export", "version": 9, "collection": "c", "dim": 2, '
            '"metric": "l2"}\n',
            vecstore.InvalidInput,
            "version 9",
        ),
        (
            '{"format": "vecstore-export", "version": 1, "collection": "c", "dim": 2, '
            '"metric": "l2"}\n{"id": "a", "vector": [1, 2]}\n{"id": "b", "vector": [1]}\n',
            vecstore.DimensionMismatch,
            r"e.jsonl:3: \"vector\" must be a list of 2 numbers",
        ),
        (
            '{"format": "vecstore-export", "version": 1, "collection": "c", "dim": 2, '
            '"metric": "l2"}\n{"id": 5, "vector": [1, 2]}\n',
            vecstore.InvalidInput,
            r"e.jsonl:2: each row must be an object with a string \"id\"",
        ),
    ],
)
def test_bad_export_files(tmp_path, content, error, match):
    f = tmp_path / "e.jsonl"
    f.write_text(content)
    with vecstore.open(tmp_path / "s") as db, pytest.raises(error, match=match):
        db.import_collection(f)


def test_parquet_file_is_recognised_by_content(tmp_path):
    pytest.importorskip("pyarrow")
    with vecstore.open(tmp_path / "s") as db:
        c = filled(db, n=20)
        c.export(tmp_path / "blob.bin", format="parquet")
        assert db.import_collection(tmp_path / "blob.bin", name="p").format == "parquet"
        same_rows(c, db.get_collection("p"))
