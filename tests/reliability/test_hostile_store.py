"""Hostile store files: a store folder someone else crafted is data, never trusted.

Its catalog can name folders and files outside the store (CRC-32 detects accidents, not
intent: an attacker recomputes it with the package's own ``record_crc``), its folders can be
symbolic links leading out of it, and a FIFO or a directory can sit where a file belongs.
Every case must give ``CorruptStoreError`` naming the file, never a hang, a deletion or a
read outside the store, and ``verify`` must report it. A store on read-only media opens
``read_only=True``; unwritable store files give ``StoreIOError`` naming them; and a reader
holds no file descriptor per mapped file.

Cases that could hang, or need a lower file limit or fewer privileges, run in a child
process; a child that outlives ``VECSTORE_HANG_SECONDS`` (300 by default) counts as hung.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import vecstore
from vecstore.cli import main as cli_main
from vecstore.storage.checksums import RECORD_COLUMNS, record_crc

ROOT = Path(__file__).resolve().parents[2]
DIM = 8
HANG_SECONDS = float(os.environ.get("VECSTORE_HANG_SECONDS", "300"))
QUERY = np.linspace(-1, 1, DIM, dtype=np.float32)
ANSWERS: dict[str, list[str]] = {}  # the template's answers to QUERY, by collection


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A closed store: ``c`` (exact, two segments) and ``i`` (a trained IVF index)."""
    path = tmp_path_factory.mktemp("hostile") / "store"
    rng = np.random.default_rng(17)
    with vecstore.open(path, seal_rows=64) as db:
        c = db.create_collection("c", dim=DIM)
        c.add([f"c{i}" for i in range(100)], vectors=rng.standard_normal((100, DIM)))
        c.add([f"d{i}" for i in range(80)], vectors=rng.standard_normal((80, DIM)))
        i = db.create_collection("i", dim=DIM, index=vecstore.IVF(nlist=4, min_rows=100))
        i.add([f"i{n}" for n in range(200)], vectors=rng.standard_normal((200, DIM)))
        assert i.index_info()["trained"]
        ANSWERS.update({name: db.get_collection(name).query(QUERY, k=5).ids for name in "ci"})
    assert not (path / "catalog.db-wal").exists()  # closed cleanly: the catalog is one file
    return path


@pytest.fixture
def store(template, tmp_path) -> Path:
    path = tmp_path / "store"
    shutil.copytree(template, path, symlinks=True)
    return path


def expected(template: Path, name: str = "c") -> list[str]:
    """The template's answer to ``QUERY`` (read when it was built: a read-only open would
    leave ``-wal`` and ``-shm`` files in it)."""
    return ANSWERS[name]


def tamper(store: Path, sql: str, params: tuple = ()) -> None:
    """Change the catalog as an attacker would: then recompute every record checksum with
    the package's own ``record_crc``, so the checksums pass."""
    conn = sqlite3.connect(store / "catalog.db")
    try:
        with conn:
            assert conn.execute(sql, params).rowcount > 0
            for table, columns in RECORD_COLUMNS.items():
                rows = conn.execute(f"SELECT rowid, {', '.join(columns)} FROM [{table}]")
                conn.executemany(
                    f"UPDATE [{table}] SET chk = ? WHERE rowid = ?",
                    [(record_crc(*values), rowid) for rowid, *values in rows.fetchall()],
                )
    finally:
        conn.close()


def coll_dir(store: Path, name: str) -> Path:
    (found,) = [p for p in (store / "collections").iterdir() if p.name.startswith(f"{name}-")]
    return found


def files(store: Path, name: str, suffix: str) -> list[Path]:
    return sorted(coll_dir(store, name).glob(f"*{suffix}"))


CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    import vecstore

    path, op, name, nofile = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if nofile:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    q = np.linspace(-1, 1, 8, dtype=np.float32)
    out = {}
    try:
        if op == "query":
            with vecstore.open(path, read_only=True) as db:
                out["ids"] = db.get_collection(name).query(q, k=5).ids
        elif op == "verify":
            with vecstore.open(path, read_only=True) as db:
                out["problems"] = db.verify().problems
        elif op == "open":
            with vecstore.open(path) as db:
                out["collections"] = db.list_collections()
        elif op == "open-ro":
            with vecstore.open(path, read_only=True) as db:
                out["collections"] = db.list_collections()
        elif op == "write":
            with vecstore.open(path) as db:
                c = db.create_collection("new", dim=8)
                c.add(["x"], vectors=q[None])
        elif op == "read-all":  # every collection, then the whole store checked
            with vecstore.open(path, read_only=True) as db:
                names = db.list_collections()
                out["ids"] = {n: db.get_collection(n).query(q, k=5).ids for n in names}
                out["problems"] = db.verify().problems
        else:
            raise SystemExit(f"unknown op {op}")
    except Exception as exc:
        out["error"] = [c.__name__ for c in type(exc).__mro__]
        out["message"] = str(exc)
    print(json.dumps(out))
    """
)


def child(path: Path, op: str, name: str = "c", *, nofile: int = 0, prefix=()) -> dict:
    """Run ``op`` on the store in a fresh process; a hang fails the test."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [*prefix, sys.executable, "-c", CHILD, str(path), op, name, str(nofile)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_SECONDS, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{op} on {path} hung (no answer after {HANG_SECONDS:g} s)")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def refused(out: dict, error: str, *names: str) -> None:
    """The child's operation raised ``error``, whose message names every one of ``names``."""
    assert error in out.get("error", []), out
    for name in names:
        assert name in out["message"], out


# -- 5. every path that comes from the catalog stays inside the store -----------------------


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_a_collection_folder_named_outside_the_store_is_never_deleted(store, tmp_path, form):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    name = "../../victim" if form == "relative" else str(victim)
    tamper(store, "UPDATE collections SET dir = ? WHERE name = 'c'", (name,))

    assert cli_main(["collections", "drop", "-q", str(store), "c"]) != 0
    assert (victim / "precious.txt").read_text() == "keep me"
    with vecstore.open(store) as db:
        with pytest.raises(vecstore.CorruptStoreError, match="victim"):
            db.get_collection("c")
        with pytest.raises(vecstore.CorruptStoreError, match="victim"):
            db.delete_collection("c")
    assert (victim / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_a_segment_named_outside_the_store_is_never_read_or_deleted(store, tmp_path, form):
    seg = files(store, "c", ".vseg")[0]
    victim = tmp_path / "victim.vseg"  # a valid copy: only its place gives it away
    shutil.copy(seg, victim)
    name = "../../../victim.vseg" if form == "relative" else str(victim)
    assert (seg.parent / name).resolve() == victim.resolve()
    tamper(store, "UPDATE segments SET file = ? WHERE file = ?", (name, seg.name))

    with vecstore.open(store) as db:
        c = db.get_collection("c")
        with pytest.raises(vecstore.CorruptStoreError, match="victim"):
            c.query(QUERY, k=5)
        with pytest.raises(vecstore.CorruptStoreError, match="victim"):
            c.compact()  # would unlink the old segment files
    assert victim.read_bytes() == seg.read_bytes()


def test_an_index_file_named_outside_the_store_is_never_deleted(store, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    tamper(store, "UPDATE ivf_files SET file = '../../../victim.txt' WHERE seg IS NULL")

    with vecstore.open(store) as db:
        i = db.get_collection("i")
        with pytest.raises(vecstore.CorruptStoreError, match="victim"):
            i.create_index(vecstore.Flat())  # would unlink the old index files
    assert victim.read_text() == "keep me"


def test_a_collection_folder_symlinked_out_of_the_store_is_refused(store, tmp_path):
    folder = coll_dir(store, "c")
    outside = tmp_path / "outside"
    shutil.copytree(folder, outside)  # every file the catalog names is there
    (outside / "precious.txt").write_text("keep me")
    shutil.rmtree(folder)
    folder.symlink_to(outside, target_is_directory=True)

    with vecstore.open(store) as db:  # a read-write open removes files no row names
        assert (outside / "precious.txt").read_text() == "keep me"
        with pytest.raises(vecstore.CorruptStoreError, match=folder.name):
            db.get_collection("c").query(QUERY, k=5)
        assert len(db.get_collection("i").query(QUERY, k=5)) == 5  # the others still work
    assert (outside / "precious.txt").read_text() == "keep me"


def test_the_collections_folder_symlinked_out_of_the_store_is_refused(store, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(store / "collections", outside)
    (outside / "precious").mkdir()
    (outside / "precious" / "data.txt").write_text("keep me")
    shutil.rmtree(store / "collections")
    (store / "collections").symlink_to(outside, target_is_directory=True)

    with pytest.raises(vecstore.CorruptStoreError, match="collections"):
        vecstore.open(store)  # a read-write open would remove what no row names
    assert (outside / "precious" / "data.txt").read_text() == "keep me"
    with vecstore.open(store, read_only=True) as db:
        with pytest.raises(vecstore.CorruptStoreError, match="collections"):
            db.get_collection("c").query(QUERY, k=5)


def test_a_segment_file_symlinked_out_of_the_store_is_refused(store, tmp_path):
    seg = files(store, "c", ".vseg")[0]
    outside = tmp_path / "outside.vseg"
    shutil.copy(seg, outside)
    seg.unlink()
    seg.symlink_to(outside)

    with vecstore.open(store, read_only=True) as db:
        with pytest.raises(vecstore.CorruptStoreError, match=seg.name):
            db.get_collection("c").query(QUERY, k=5)


def _dir_outside(store: Path, tmp: Path) -> str:
    shutil.copytree(coll_dir(store, "c"), tmp / "victim")  # the data checks out there
    tamper(store, "UPDATE collections SET dir = '../../victim' WHERE name = 'c'")
    return "victim"


def _segment_outside(store: Path, tmp: Path) -> str:
    seg = files(store, "c", ".vseg")[0]
    shutil.copy(seg, tmp / "victim.vseg")
    tamper(store, "UPDATE segments SET file = '../../../victim.vseg' WHERE file = ?", (seg.name,))
    return "victim.vseg"


def _index_outside(store: Path, tmp: Path) -> str:
    model = files(store, "i", ".vidx")[0]
    shutil.copy(model, tmp / "victim.vidx")
    tamper(
        store, "UPDATE ivf_files SET file = '../../../victim.vidx' WHERE file = ?", (model.name,)
    )
    return "victim.vidx"


def _folder_symlinked(store: Path, tmp: Path) -> str:
    folder = coll_dir(store, "c")
    shutil.copytree(folder, tmp / "outside")
    shutil.rmtree(folder)
    folder.symlink_to(tmp / "outside", target_is_directory=True)
    return folder.name


def _collections_symlinked(store: Path, tmp: Path) -> str:
    shutil.copytree(store / "collections", tmp / "outside")
    shutil.rmtree(store / "collections")
    (store / "collections").symlink_to(tmp / "outside", target_is_directory=True)
    return "collections"


def _segment_symlinked(store: Path, tmp: Path) -> str:
    seg = files(store, "c", ".vseg")[0]
    shutil.copy(seg, tmp / "outside.vseg")
    seg.unlink()
    seg.symlink_to(tmp / "outside.vseg")
    return seg.name


@pytest.mark.parametrize(
    "make",
    [
        _dir_outside,
        _segment_outside,
        _index_outside,
        _folder_symlinked,
        _collections_symlinked,
        _segment_symlinked,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_verify_reports_every_path_leaving_the_store(store, tmp_path, make):
    named = make(store, tmp_path)
    with vecstore.open(store, read_only=True) as db:
        report = db.verify()  # reports; never raises for what it finds
    assert not report.ok
    assert any(named in p for p in report.problems), report.problems


# -- 6. non-regular files never hang or crash --------------------------------------------


OPENS = ("open", "open-ro")


def _replace(path: Path, kind: str) -> None:
    if path.exists():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


@pytest.mark.parametrize("op", ["query", "verify"])
@pytest.mark.parametrize("target", ["segment", "index file"])
def test_a_fifo_in_place_of_a_mapped_file_never_hangs(store, target, op):
    name, suffix = ("c", ".vseg") if target == "segment" else ("i", ".vidx")
    path = files(store, name, suffix)[0]
    _replace(path, "fifo")
    out = child(store, op, name)
    if op == "query":
        refused(out, "CorruptStoreError", str(path), "not a regular file")
    else:
        assert any(path.name in p and "not a regular file" in p for p in out["problems"]), out


@pytest.mark.parametrize(
    "target, op",
    [
        *((t, op) for t in ("catalog.db", "catalog.db-wal", "catalog.db-shm") for op in OPENS),
        ("LOCK", "open"),  # a read-only open does not use LOCK
    ],
)
def test_a_fifo_in_place_of_a_store_file_never_hangs(store, target, op):
    _replace(store / target, "fifo")
    refused(child(store, op), "CorruptStoreError", str(store / target), "not a regular file")


@pytest.mark.parametrize(
    "target, op",
    [
        ("segment", "query"),
        ("segment", "verify"),
        ("index file", "query"),
        ("index file", "verify"),
        ("catalog.db", "open"),
        ("catalog.db", "open-ro"),
        ("LOCK", "open"),
    ],
)
def test_a_directory_in_place_of_a_store_file_is_named(store, target, op):
    if target in ("segment", "index file"):
        name, suffix = ("c", ".vseg") if target == "segment" else ("i", ".vidx")
        path = files(store, name, suffix)[0]
    else:
        name, path = "c", store / target
    _replace(path, "directory")
    read_only = op != "open"
    if op == "verify":
        with vecstore.open(store, read_only=True) as db:
            problems = db.verify().problems
        assert any(path.name in p and "not a regular file" in p for p in problems), problems
        return
    with pytest.raises(vecstore.CorruptStoreError) as caught:
        with vecstore.open(store, read_only=read_only) as db:
            db.get_collection(name).query(QUERY, k=5)
    assert str(path) in str(caught.value)
    assert "not a regular file" in str(caught.value)


# -- 8. permissions ----------------------------------------------------------------------


@pytest.fixture
def read_only_mount(tmp_path):
    """``(source, view)``: ``view`` shows ``source`` through a read-only bind mount."""
    source, view = tmp_path / "source", tmp_path / "view"
    source.mkdir()
    view.mkdir()
    try:
        bind = subprocess.run(
            ["mount", "--bind", str(source), str(view)], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("cannot run mount")
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.decode().strip()}")
    try:
        ro = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(view)], capture_output=True, timeout=30
        )
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only: {ro.stderr.decode().strip()}")
        yield source, view
    finally:
        subprocess.run(["umount", "-l", str(view)], capture_output=True, timeout=30)


def _copy_while_open(template: Path, dest: Path) -> None:
    """Copy a store while a writer holds it open with commits still in its log (-wal, -shm)."""
    shutil.copytree(template, dest)
    with vecstore.open(dest) as db:
        db.get_collection("c").add(["late"], vectors=QUERY[None])
        assert (dest / "catalog.db-wal").stat().st_size > 0
        copy = dest.with_name("copy")
        shutil.copytree(dest, copy)
    shutil.rmtree(dest)
    copy.rename(dest)


@pytest.mark.parametrize("state", ["closed cleanly", "copied while open"])
def test_a_store_on_read_only_media_opens_read_only(template, read_only_mount, state):
    source, view = read_only_mount
    if state == "closed cleanly":
        shutil.copytree(template, source / "store")
        want = expected(template)
    else:
        _copy_while_open(template, source / "store")
        want = ["late", *expected(template)[:4]]
    with pytest.raises(OSError):
        (view / "store" / "probe").touch()  # the media really is read-only
    out = child(view / "store", "read-all")
    assert "error" not in out, out
    assert out["ids"]["c"] == want
    assert len(out["ids"]["i"]) == 5
    assert out["problems"] == []


def test_a_store_on_read_only_media_with_a_log_it_cannot_read_is_refused(template, read_only_mount):
    source, view = read_only_mount
    _copy_while_open(template, source / "store")
    (source / "store" / "catalog.db-shm").unlink()  # the log is there; its index is not
    out = child(view / "store", "open-ro")
    refused(out, "StoreIOError", str(view / "store" / "catalog.db-wal"))


def test_a_read_only_media_reader_notices_a_writer(template, read_only_mount):
    source, view = read_only_mount
    shutil.copytree(template, source / "store")
    with vecstore.open(view / "store", read_only=True) as reader:
        c = reader.get_collection("c")
        assert c.query(QUERY, k=5).ids == expected(template)
        # the same folder is writable through another path: someone writes there
        with vecstore.open(source / "store") as writer:
            writer.get_collection("c").add(["late"], vectors=QUERY[None])
        with pytest.raises(vecstore.StoreIOError, match="reopen"):
            c.query(QUERY, k=5)
    with vecstore.open(view / "store", read_only=True) as reader:
        assert reader.get_collection("c").query(QUERY, k=1).ids == ["late"]


def _unprivileged() -> tuple[str, ...]:
    """A command prefix under which file permission bits apply to the child."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permission bits would not apply")
    drop = "-dac_override,-dac_read_search"
    return ("setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}")


@pytest.mark.parametrize(
    "target, op, named",
    [
        ("catalog.db", "open", "catalog.db"),
        ("store folder", "open", "store"),
        ("LOCK", "open", "LOCK"),
        ("collections", "write", "collections"),
    ],
)
def test_unwritable_store_files_raise_store_io_errors(store, target, op, named):
    path = store if target == "store folder" else store / target
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        prefix = _unprivileged()
        out = child(store, op, prefix=prefix)
        assert "StoreIOError" in out.get("error", []), out
        assert str(store / named if target != "store folder" else store) in out["message"], out
        reading = child(store, "query", prefix=prefix)  # reading needs no write permission
        assert reading.get("ids") == expected(store), reading
    finally:
        path.chmod(mode)


# -- 9. one file descriptor per mapped file is one too many ------------------------------


def test_mapped_files_hold_no_file_descriptors(tmp_path):
    path, n = tmp_path / "many", 150
    rng = np.random.default_rng(3)
    with vecstore.open(path, seal_rows=1) as db:
        for k in range(n):  # a segment each, never merged away
            db.create_collection(f"c{k}", dim=DIM).add(
                ["a", "b"], vectors=rng.standard_normal((2, DIM))
            )
    out = child(path, "read-all", nofile=64)  # before: EMFILE after about 50 segments
    assert "error" not in out, out
    assert len(out["ids"]) == n and all(len(ids) == 2 for ids in out["ids"].values())
    assert out["problems"] == []
