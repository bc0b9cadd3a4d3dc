"""Intent records and the open-time cleanup: what is deleted is proven garbage, the rest is
quarantined, and a record proves nothing unless it is intact."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import vecstore
from vecstore.storage.catalog import Catalog
from vecstore.storage.intents import Intent, read_records


def store(path: Path) -> Path:
    """A store with one collection and one segment; its collection folder."""
    with vecstore.open(path, seal_rows=4) as db:
        db.create_collection("c", dim=2).add(["a", "b", "c", "d"], vectors=np.eye(4, 2))
    (folder,) = (path / "collections").iterdir()
    return folder


def catalog(path: Path) -> Catalog:
    return Catalog(path / "catalog.db", read_only=False, synchronous="full", busy_timeout=1.0)


def reopen(path: Path) -> list[str]:
    """Open read-write (cleanup runs); the quarantined files, as they were in the store."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        vecstore.open(path).close()
    return sorted(
        "/".join(p.relative_to(path / "quarantine").parts[1:])
        for p in (path / "quarantine").rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )


def test_files_of_an_uncommitted_intent_are_deleted(tmp_path):
    path = tmp_path / "s"
    folder = store(path)
    cat = catalog(path)
    intent = Intent(path, cat)
    intent.publishing(folder, ["f" * 32 + ".vseg"])
    (folder / ("f" * 32 + ".vseg")).write_bytes(b"written, never committed")
    cat.close()  # a crash before the commit
    assert reopen(path) == []
    assert not (folder / ("f" * 32 + ".vseg")).exists() and read_records(path) == ([], [])


def test_files_retired_by_a_committed_intent_are_deleted(tmp_path):
    path = tmp_path / "s"
    folder = store(path)
    (seg,) = folder.glob("*.vseg")
    old = folder / ("e" * 32 + ".vseg")
    old.write_bytes(b"unpublished by the commit")
    cat = catalog(path)
    intent = Intent(path, cat)
    intent.retiring(folder, [old.name])
    with cat.write():
        intent.seal()
    cat.close()  # a crash after the commit, before the unlinks
    assert reopen(path) == []
    assert not old.exists() and seg.exists()


def test_a_retired_file_whose_commit_is_missing_is_kept(tmp_path):
    """The catalog lacks the token (its transaction never committed, or the catalog lost
    it): a file it would have retired is not proven garbage."""
    path = tmp_path / "s"
    folder = store(path)
    kept = folder / ("d" * 32 + ".vseg")
    kept.write_bytes(b"data the catalog may have lost")
    cat = catalog(path)
    intent = Intent(path, cat)
    intent.retiring(folder, [kept.name])
    intent.publishing(folder, [])  # writes the record; no transaction commits
    cat.close()
    assert reopen(path) == [f"collections/{folder.name}/{kept.name}"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-5],  # truncated
        lambda data: data.replace(b'"publish"', b'"publisH"'),  # altered, crc fails
        lambda data: json.dumps(
            {"intent": {**json.loads(data)["intent"], "publish": ["../../x"]}, "crc32": 0}
        ).encode(),  # a path outside collections/
    ],
)
def test_a_damaged_intent_record_proves_nothing(tmp_path, damage):
    path = tmp_path / "s"
    folder = store(path)
    cat = catalog(path)
    intent = Intent(path, cat)
    name = "c" * 32 + ".vseg"
    intent.publishing(folder, [name])
    (folder / name).write_bytes(b"x")
    cat.close()
    (record,) = (path / "intents").iterdir()
    record.write_bytes(damage(record.read_bytes()))
    assert reopen(path) == [f"collections/{folder.name}/{name}", f"intents/{record.name}"]
    assert not record.exists()
