"""Cleanup never destroys data on the catalog's word alone; bad arguments to ``vecstore.open``
get typed errors; the demo never deletes a user's store; deleted text leaves the store.

Issue 17, items 4, 7, 14 and 15: each test is one case of the review, and failed before its
fix (docs/reliability.md, "Files no catalog row names", lists them with their results).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import vecstore
from tests.conftest import hashing_encoder
from vecstore import demo
from vecstore.encoders.base import EncoderSpec
from vecstore.errors import InvalidInput, StoreIOError, StoreNotFound

ROOT = Path(__file__).resolve().parents[2]
DIM = 8
FEWER = "catalog names fewer files than the store holds"


def ids(a: int, b: int) -> list[str]:
    return [f"r{i}" for i in range(a, b)]


def vectors(a: int, b: int) -> np.ndarray:
    return np.random.default_rng([a, b]).standard_normal((b - a, DIM)).astype(np.float32)


def segments(path: Path) -> dict[str, bytes]:
    """Every segment and index file of the store (wherever it is: in place or quarantined),
    by name, with its bytes."""
    return {
        p.name: p.read_bytes()
        for p in path.rglob("*")
        if p.suffix in (".vseg", ".vidx") and p.is_file()
    }


def swap_catalog(path: Path, catalog: Path) -> None:
    """Put ``catalog`` in place of the store's catalog, as a user restoring a file would."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path / 'catalog.db'}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(catalog, path / "catalog.db")


def cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VECSTORE_FAULT", None)
    return subprocess.run(
        [sys.executable, "-m", "vecstore", *map(str, args)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def rows(path: Path) -> tuple[list[str], bytes]:
    with vecstore.open(path, read_only=True) as db:
        got = db.get_collection("c").get(include_vectors=True)
        return got.ids, got.vectors.tobytes()


# -- item 4: cleanup ---------------------------------------------------------------------


def test_a_lost_wal_after_an_acknowledged_add_moves_its_file_to_quarantine(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path, seal_rows=16) as db:
        db.create_collection("c", dim=DIM).add(ids(0, 40), vectors=vectors(0, 40))
    with vecstore.open(path, seal_rows=16) as db:
        db.get_collection("c").add(ids(40, 80), vectors=vectors(40, 80))  # acknowledged
        without_wal = (path / "catalog.db").read_bytes()  # the add is in the WAL only
    expected = rows(path)
    shutil.copyfile(path / "catalog.db", tmp_path / "right.db")
    files = segments(path)
    assert len(files) == 2
    (path / "catalog.db").write_bytes(without_wal)  # the WAL is lost: truncated or deleted
    with warnings.catch_warnings(record=True) as caught, vecstore.open(path) as db:
        warnings.simplefilter("always")
        assert db.get_collection("c").count() == 40
        report = db.verify()
    assert segments(path) == files  # nothing deleted
    assert len(list((path / "quarantine").rglob("*.vseg"))) == 1
    assert any("quarantine" in str(w.message) for w in caught)
    assert not report.ok and any(FEWER in p for p in report.problems)
    swap_catalog(path, tmp_path / "right.db")  # the catalog is fixed
    with vecstore.open(path) as db:
        info = db.restore_quarantine()
        assert len(info.restored) == 1 and info.remaining == []
        assert db.verify().ok
    assert rows(path) == expected and not (path / "quarantine").exists()


def test_an_older_catalog_restored_from_a_copy_deletes_no_file(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path, seal_rows=16) as db:
        db.create_collection("c", dim=DIM).add(ids(0, 40), vectors=vectors(0, 40))
    shutil.copyfile(path / "catalog.db", tmp_path / "old.db")
    with vecstore.open(path, seal_rows=16) as db:
        db.get_collection("c").add(ids(40, 80), vectors=vectors(40, 80))
        db.create_collection("d", dim=DIM).add(ids(0, 20), vectors=vectors(0, 20))
    shutil.copyfile(path / "catalog.db", tmp_path / "right.db")
    expected, files = rows(path), segments(path)
    swap_catalog(path, tmp_path / "old.db")
    with warnings.catch_warnings(record=True) as caught, vecstore.open(path) as db:
        warnings.simplefilter("always")
        assert db.list_collections() == ["c"] and db.get_collection("c").count() == 40
    assert segments(path) == files  # nothing deleted
    assert any("quarantine" in str(w.message) for w in caught)
    with vecstore.open(path, read_only=True) as db:
        assert any(FEWER in p for p in db.verify().problems)
    # The documented manual procedure (docs/reliability.md, Quarantine): with the store
    # closed, put the right catalog back, move the quarantined files back, remove the folder.
    swap_catalog(path, tmp_path / "right.db")
    for stamp in (path / "quarantine").iterdir():
        for folder in (stamp / "collections").iterdir():
            (path / "collections" / folder.name).mkdir(exist_ok=True)
            for f in folder.iterdir():
                f.rename(path / "collections" / folder.name / f.name)
    shutil.rmtree(path / "quarantine")
    with vecstore.open(path) as db:
        assert db.verify().ok and db.list_collections() == ["c", "d"]
    assert rows(path) == expected


@pytest.mark.parametrize("other", ["without collections", "with a collection"])
def test_another_stores_catalog_put_in_place_deletes_no_file(tmp_path, other):
    """Without collections, the old cleanup deleted every collection folder. With one, it
    already touched nothing (the catalog names files that are missing); the case stays to
    check that restoring goes through the command line, `verify --restore-quarantine`."""
    path, foreign = tmp_path / "s", tmp_path / "other"
    with vecstore.open(path, seal_rows=16) as db:
        db.create_collection("c", dim=DIM).add(ids(0, 40), vectors=vectors(0, 40))
    expected, files = rows(path), segments(path)
    shutil.copyfile(path / "catalog.db", tmp_path / "right.db")
    with vecstore.open(foreign) as db:
        if other == "with a collection":
            db.create_collection("x", dim=3).add(["a"], vectors=[[1.0, 0.0, 0.0]])
    swap_catalog(path, foreign / "catalog.db")
    with vecstore.open(path) as db:  # quarantines (no collections) or touches nothing
        report = db.verify()
    assert not report.ok and segments(path) == files
    swap_catalog(path, tmp_path / "right.db")
    proc = cli("verify", path, "--restore-quarantine")
    assert proc.returncode == 0, proc.stderr
    assert "ok:" in proc.stdout and ("restored 1 file" in proc.stdout) == (
        other == "without collections"
    )
    assert rows(path) == expected and not (path / "quarantine").exists()


def test_verify_reports_files_the_catalog_does_not_name_as_damage(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path, seal_rows=16) as db:
        db.create_collection("c", dim=DIM).add(ids(0, 40), vectors=vectors(0, 40))
    (seg,) = (path / "collections").glob("*/*.vseg")
    shutil.copyfile(seg, seg.with_name("0" * 32 + ".vseg"))  # as a lost catalog leaves one
    with vecstore.open(path, read_only=True) as db:
        report = db.verify()
    assert not report.ok
    (line,) = report.problems
    assert FEWER in line and "0" * 32 + ".vseg" in line and "quarantine" in line


def test_a_stray_subdirectory_in_a_collection_folder_does_not_block_opening(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path, seal_rows=16) as db:
        db.create_collection("c", dim=DIM).add(ids(0, 40), vectors=vectors(0, 40))
    (seg,) = (path / "collections").glob("*/*.vseg")
    (seg.parent / "notes").mkdir()
    (seg.parent / "notes" / "keep.txt").write_text("a user's file")
    with warnings.catch_warnings(record=True) as caught, vecstore.open(path) as db:
        warnings.simplefilter("always")
        assert db.get_collection("c").count() == 40
    (kept,) = (path / "quarantine").glob(f"*/collections/{seg.parent.name}/notes/keep.txt")
    assert kept.read_text() == "a user's file"
    assert any("quarantine" in str(w.message) for w in caught)


def test_files_of_an_unacknowledged_write_are_deleted_not_quarantined(tmp_path, monkeypatch):
    """The one deletion cleanup makes on proof: a write whose intent record is on disk and
    whose transaction never committed (here its commit fails with an I/O error). The old
    cleanup deleted these too (it deleted everything unnamed): this checks the proof path."""
    from vecstore.storage.files import io_steps

    for step in range(1, 40):
        path = tmp_path / f"s{step}"
        with vecstore.open(path, seal_rows=16) as db:
            c = db.create_collection("c", dim=DIM)
            monkeypatch.setenv("VECSTORE_FAULT", f"eio@{io_steps() + step}")
            with pytest.raises(StoreIOError) as err:
                c.add(ids(0, 40), vectors=vectors(0, 40))
            monkeypatch.delenv("VECSTORE_FAULT")
            if "(commit)" in str(err.value):
                break
    else:
        pytest.fail("the add never reached its commit")
    (written,) = (path / "collections").glob("*/*.vseg")  # complete, renamed, never published
    assert list((path / "intents").iterdir())
    with vecstore.open(path) as db:
        assert db.get_collection("c").count() == 0 and db.verify().ok
    assert not written.exists() and not (path / "quarantine").exists()
    assert not list((path / "intents").iterdir())


# -- item 7: arguments to vecstore.open --------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), -1, "a", float("inf"), 1e12, True])
def test_a_bad_lock_timeout_is_refused(tmp_path, value):
    with pytest.raises(InvalidInput, match="lock_timeout must be a number of seconds"):
        vecstore.open(tmp_path / "s", lock_timeout=value)
    assert not (tmp_path / "s").exists()  # refused before anything was created


def test_a_path_under_a_regular_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreNotFound, match="is a file, not a directory"):
        vecstore.open(tmp_path / "file" / "store")
    with pytest.raises(StoreNotFound):
        vecstore.open(tmp_path / "file" / "store", read_only=True)


def test_a_dangling_symlink_is_refused(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StoreNotFound, match="symbolic link .* does not exist"):
        vecstore.open(tmp_path / "link")
    assert not (tmp_path / "nowhere").exists()


# -- item 14: the demo -------------------------------------------------------------------


def test_the_demo_refuses_a_store_it_did_not_create(tmp_path, monkeypatch):
    store = tmp_path / "mine"
    with vecstore.open(store) as db:
        db.create_collection("wordnet", dim=DIM).add(ids(0, 5), vectors=vectors(0, 5))
    monkeypatch.setattr(demo, "wordnet_demo", lambda *args: None)  # no model, no corpus
    with pytest.raises(SystemExit) as exit_:
        demo.main(["--store", str(store)])
    assert exit_.value.code == 2
    with vecstore.open(store, read_only=True) as db:
        assert db.get_collection("wordnet").count() == 5


def test_the_demo_rebuilds_only_its_own_store(tmp_path, monkeypatch):
    def fake(store, work, size):
        with vecstore.open(store) as db:
            db.create_collection("wordnet", dim=DIM).add(["a"], vectors=vectors(0, 1))

    monkeypatch.setattr(demo, "wordnet_demo", fake)
    store = tmp_path / "demo"
    demo.main(["--store", str(store)])
    demo.main(["--store", str(store)])  # its own store from the last run: rebuilt
    with vecstore.open(store) as db:
        assert db.get_collection("wordnet").count() == 1
        db.create_collection("mine", dim=DIM)  # now it holds a user's collection too
    with pytest.raises(SystemExit):
        demo.main(["--store", str(store)])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("x")
    with pytest.raises(SystemExit):
        demo.main(["--store", str(tmp_path / "other")])
    assert (tmp_path / "other" / "thesis.tex").exists()


# -- item 15: deleted text leaves the store ----------------------------------------------


class CachedEncoder:
    """A deterministic encoder whose embeddings the store caches (a callable's are not)."""

    name = "test-hashing"
    dim = 16

    def __init__(self) -> None:
        self.embedded = 0

    def encode(self, texts, kind="document") -> np.ndarray:
        self.embedded += len(texts)
        return hashing_encoder(list(texts), self.dim)

    def config(self) -> EncoderSpec:
        return EncoderSpec(kind="test-hashing", model="hashing", dim=self.dim)


SECRET = "the vault launch code is xq7secretzz quixotic-zebra-4471"
OTHERS = [f"an ordinary note number {i} about apples" for i in range(40)]


def traces(text: str, encoder: CachedEncoder) -> dict[str, bytes]:
    """What of ``text`` a store could keep: the text, its rare index terms, its vector,
    and its embedding-cache key."""
    common = {t for d in OTHERS for t in vecstore.text.terms(d)}
    out = {"document": text.encode(), "vector": encoder.encode([text]).tobytes()}
    # (terms of 5+ letters: a shorter one can occur in other bytes, "code" in "encoder")
    out |= {f"term {t}": t.encode() for t in vecstore.text.terms(text) if len(t) >= 5}
    out = {k: v for k, v in out.items() if k[5:] not in common}
    out["cache key"] = hashlib.sha256(text.encode()).digest()[:16]
    return out


def found(path: Path, needles: dict[str, bytes]) -> list[str]:
    """Which needles occur in which file of the store (catalog, WAL, segments, anything)."""
    hits = []
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        data = f.read_bytes()
        hits += [f"{what} in {f.name}" for what, needle in needles.items() if needle in data]
    return hits


@pytest.mark.parametrize("then", ["compact", "delete_collection"])
@pytest.mark.parametrize("where", ["pending", "segment"])
def test_deleted_text_leaves_every_store_file(tmp_path, where, then):
    enc = CachedEncoder()
    path = tmp_path / "s"
    needles = traces(SECRET, enc)
    with vecstore.open(path, seal_rows=16) as db:
        c = db.create_collection("c", encoder=enc)
        c.add([f"n{i}" for i in range(40)], documents=OTHERS)
        c.add(["secret"], documents=[SECRET])  # pending: fewer rows than seal_rows
        if where == "segment":
            c.compact()  # sealed into a segment file
        assert len(found(path, needles)) >= 3  # the test can see the secret
        if then == "compact":
            c.delete(["secret"])
            c.compact()
        else:
            db.delete_collection("c")
        assert found(path, needles) == []
    assert found(path, needles) == []


def test_cache_entries_of_texts_a_live_row_still_has_are_kept(tmp_path):
    enc = CachedEncoder()
    with vecstore.open(tmp_path / "s") as db:
        a = db.create_collection("a", encoder=enc)
        b = db.create_collection("b", encoder=enc)
        a.add(["x", "y"], documents=["shared text", "only in a"])
        b.add(["x"], documents=["shared text"])
        assert enc.embedded == 2  # "shared text" came from the cache the second time
        a.delete(["x", "y"])
        a.compact()
        a.add(["x", "y"], documents=["shared text", "only in a"])
        assert enc.embedded == 3  # b still has "shared text": only "only in a" was pruned


def test_the_embedding_cache_can_be_cleared_from_the_api_and_the_cli(tmp_path):
    enc = CachedEncoder()
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        db.create_collection("c", encoder=enc).add(["a", "b"], documents=["one", "two"])
        assert db.clear_embedding_cache() == 2
        assert db.clear_embedding_cache() == 0
        db.get_collection("c", encoder=enc).add(["c"], documents=["three"])
    proc = cli("clear-cache", path)
    assert proc.returncode == 0 and "deleted 1 cached embedding" in proc.stdout, proc.stderr
    with vecstore.open(path) as db:
        assert db.clear_embedding_cache() == 0


def test_ctrl_c_while_a_segment_is_written_waits_for_its_file_before_the_clean_up():
    # A write's clean-up unlinks the files it named: it must not run while a thread is still
    # writing one (the file would stay, outside any record). Two real SIGINTs reach the main
    # thread while it waits for such a job; the KeyboardInterrupt comes once the job is done.
    # In a fresh process: after OpenVINO has run in a process (tests/encoders), a SIGINT to it
    # ends it with SIGSEGV.
    script = """
import signal, threading, time
from concurrent.futures import Future
from vecstore.writes import wait_through_interrupts

job = Future()
main = threading.main_thread().ident

def worker():
    for _ in range(2):
        time.sleep(0.1)
        signal.pthread_kill(main, signal.SIGINT)
    time.sleep(0.3)
    job.set_result(None)

threading.Thread(target=worker, daemon=True).start()
try:
    wait_through_interrupts(job)
    print("no interrupt")
except KeyboardInterrupt:
    print("interrupted, job done:", job.done())
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "interrupted, job done: True"
