"""The change counter (storage/changes.py): writers move it odd, then even, around their
commits; readers trust only an even value they saw before confirming a snapshot, so another
process's commit is seen by the next query, and a writer killed between its commit and the
even value leaves the counter odd (readers check with SQL) until the next writer moves on."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vecstore
from vecstore.storage.changes import ChangeCounter
from vecstore.storage.layout import CHANGES


def _value(path) -> int | None:
    counter = ChangeCounter.open(path, write=False)
    try:
        return counter.read()
    finally:
        counter.close()


def test_writers_move_it_odd_then_even(tmp_path):
    counter = ChangeCounter.open(tmp_path, write=True)
    assert counter.read() is None  # a new file holds nothing to trust
    counter.begin()
    odd = counter.read()
    assert odd is not None and odd & 1 and not ChangeCounter.steady(odd)
    counter.begin()  # nested: only the outermost counts
    counter.end()
    assert counter.read() == odd
    counter.end()
    even = counter.read()
    assert even == odd + 1 and ChangeCounter.steady(even)
    counter.begin()
    counter.end()
    assert counter.read() == even + 2
    counter.close()


@pytest.mark.parametrize(
    "content", [b"", b"\x01" * 7, b"\x00" * 16, os.urandom(16), b"\x02" + b"\x00" * 15]
)
def test_garbage_reads_as_unknown_and_the_next_writer_repairs_it(tmp_path, content):
    (tmp_path / CHANGES).write_bytes(content)
    counter = ChangeCounter.open(tmp_path, write=True)
    assert counter.read() is None
    counter.begin()
    counter.end()
    assert ChangeCounter.steady(counter.read())
    counter.close()


def test_a_replaced_file_reads_as_unknown(tmp_path):
    writer = ChangeCounter.open(tmp_path, write=True)
    writer.begin()
    writer.end()
    reader = ChangeCounter.open(tmp_path, write=False)
    assert ChangeCounter.steady(reader.read())
    os.unlink(tmp_path / CHANGES)  # the reader's descriptor now names a deleted file
    assert reader.read() is None
    reader.close()
    writer.close()


def test_a_store_bumps_it_on_every_write(tmp_path, rng):
    with vecstore.open(tmp_path / "s") as db:
        before = _value(tmp_path / "s")
        c = db.create_collection("c", dim=4)
        c.add(["a"], vectors=rng.standard_normal((1, 4), dtype=np.float32))
        after = _value(tmp_path / "s")
        assert ChangeCounter.steady(before) and ChangeCounter.steady(after) and after > before


WRITE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import vecstore
    from vecstore.storage.changes import ChangeCounter

    path, how = sys.argv[1], sys.argv[2]
    with vecstore.open(path) as db:
        c = db.get_collection("c")
        if how == "die-after-commit":
            # SIGKILL between the commit and the even value: the counter stays odd
            ChangeCounter.end = lambda self: os.kill(os.getpid(), signal.SIGKILL)
        c.add(["near"], vectors=np.full((1, 8), 0.5, dtype=np.float32))
    print("done")
    """
)


def _write(path, how):
    return subprocess.run(
        [sys.executable, "-c", WRITE, str(path), how], capture_output=True, text=True
    )


@pytest.mark.parametrize("how", ["clean", "die-after-commit"])
def test_another_processs_commit_is_seen_by_the_next_query(tmp_path, rng, how):
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        c = db.create_collection("c", dim=8)
        x = rng.standard_normal((40, 8), dtype=np.float32)
        c.add([str(i) for i in range(40)], vectors=x, metadata=[{"i": i} for i in range(40)])
    q = np.full(8, 0.5, dtype=np.float32)
    with vecstore.open(path, read_only=True) as db:
        c = db.get_collection("c")
        first = c.query(q, k=3)
        for _ in range(3):  # kept, then confirmed with SQL once, then reused on the counter
            assert c.query(q, k=3).ids == first.ids
        proc = _write(path, how)
        if how == "clean":
            assert proc.returncode == 0, proc.stderr
        else:
            assert proc.returncode == -9
            assert not ChangeCounter.steady(_value(path))  # left odd: readers use SQL
        got = c.query(q, k=3)
        assert got.ids[0] == "near" and got.metadata[0] == {}
        assert c.count() == 41
    if how == "die-after-commit":
        assert _write(path, "clean").returncode != 0  # "near" exists: add refuses it
        assert ChangeCounter.steady(_value(path))  # ... and the next writer repaired it


def test_the_quick_path_agrees_with_the_full_one(tmp_path, rng):
    # ``explain`` always takes the full path (a read transaction, plan.search)
    with vecstore.open(tmp_path / "s", seal_rows=64) as db:
        for metric in ("cosine", "dot", "l2"):
            c = db.create_collection(f"c-{metric}", dim=16, metric=metric)
            x = rng.standard_normal((50, 16), dtype=np.float32)
            c.add([str(i) for i in range(50)], vectors=x, documents=[f"d{i}" for i in range(50)])
            c.delete([str(i) for i in range(0, 50, 3)])
            for q in rng.standard_normal((5, 16), dtype=np.float32):
                for k in (1, 10, 100):
                    c.query(q, k=k)
                    got, want = c.query(q, k=k), c.explain(q, k=k).result
                    assert got.ids == want.ids and got.documents == want.documents
                    np.testing.assert_array_equal(got.scores, want.scores)
            with pytest.raises(vecstore.errors.InvalidInput):
                c.query(np.full(16, np.nan, dtype=np.float32))
            with pytest.raises(vecstore.errors.InvalidInput):
                c.query(x[0], ef=10)  # a Flat collection has no beam width
            with pytest.raises(vecstore.errors.InvalidInput):
                c.query(x[0], k=0)
        g = db.create_collection("g", dim=16, index=vecstore.HNSW(min_rows=1))
        x = rng.standard_normal((300, 16), dtype=np.float32)
        g.add([str(i) for i in range(300)], vectors=x, metadata=[{"i": i} for i in range(300)])
        g.delete([str(i) for i in range(0, 300, 5)])
        for q in rng.standard_normal((5, 16), dtype=np.float32):
            for ef in (None, 10, 64):
                g.query(q, k=10, ef=ef)
                got, want = g.query(q, k=10, ef=ef), g.explain(q, k=10, ef=ef).result
                assert got.ids == want.ids and got.metadata == want.metadata
                np.testing.assert_array_equal(got.scores, want.scores)
        got = g.query(x[1], k=3)
        got.metadata[0]["i"] = "changed"  # a caller's change reaches no later result
        assert g.query(x[1], k=3).metadata[0] == {"i": 1}
