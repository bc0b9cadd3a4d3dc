"""A real full disk: a store on a small tmpfs fills it up.

Each write the disk cannot hold must fail with ``DiskFullError`` and change nothing; every
acknowledged write must survive a reopen on the still-full disk; once space is freed the
same handle must write again. Needs permission to mount a tmpfs (root, or CAP_SYS_ADMIN);
elsewhere it is skipped, and ``test_crash_points.py``'s injected ``enospc`` faults cover
every write step instead.
"""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

import vecstore

DIM = 64


@pytest.fixture
def tmpfs(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("cannot run mount")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def batch(n: int, start: int, rng) -> tuple[list[str], np.ndarray, list[str], list[dict]]:
    ids = [f"r{start + i}" for i in range(n)]
    docs = [f"row {start + i} of the full disk test " * 4 for i in range(n)]
    meta = [{"n": start + i, "even": (start + i) % 2 == 0} for i in range(n)]
    return ids, rng.standard_normal((n, DIM)).astype(np.float32), docs, meta


@pytest.mark.filterwarnings("ignore:.*tidying segments after it failed:RuntimeWarning")
@pytest.mark.parametrize("durability", ["full", "normal"])
def test_a_full_disk_refuses_writes_cleanly_and_loses_nothing(tmpfs, durability):
    rng = np.random.default_rng(0)
    filler = tmpfs / "filler"
    filler.write_bytes(b"\0" * (512 << 10))  # space to give back later
    path = tmpfs / "store"
    acked: dict[str, np.ndarray] = {}
    failures = 0
    with vecstore.open(path, seal_rows=256, durability=durability) as db:
        c = db.create_collection("c", dim=DIM)
        start = 0
        # sealing after an acknowledged write may fail for want of space: a warning
        while failures < 3 and start < 200_000:
            size = int(rng.integers(1, 400))
            ids, x, docs, meta = batch(size, start, rng)
            try:
                c.add(ids, vectors=x, documents=docs, metadata=meta)
            except vecstore.DiskFullError as exc:
                assert "disk is full" in str(exc)
                failures += 1
                continue
            acked.update(zip(ids, x))
            start += size
        assert failures == 3, "the disk never filled up"
        assert c.count() == len(acked)  # the refused writes left nothing behind
        # the handle is still usable: free space and write again
        filler.unlink()
        ids, x, docs, meta = batch(5, start, rng)
        c.add(ids, vectors=x, documents=docs, metadata=meta)
        acked.update(zip(ids, x))
        filler.write_bytes(b"\0" * (os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize))
    with vecstore.open(path) as db:  # reopen on a full disk
        c = db.get_collection("c")
        got = c.get(include_vectors=True)
        assert sorted(got.ids) == sorted(acked)
        for id_, vec, meta in zip(got.ids, got.vectors, got.metadata):
            assert np.array_equal(vec, acked[id_]) and meta["n"] == int(id_[1:])
        report = db.verify()
        assert not report.problems, report.problems
        some = next(iter(acked))
        assert c.query(acked[some], k=1).ids == [some]
        assert len(c.query("row 3 of the full disk", mode="text", k=1)) == 1  # keyword index intact
