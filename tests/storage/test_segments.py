"""Segment files: round trips, checksums, and every header check."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

from vecstore.errors import CorruptStoreError
from vecstore.storage.segments import (
    crc32_combine,
    open_segment,
    pread_crc32,
    write_segment,
)


@pytest.mark.parametrize("n", [0, 1, 7, 1 << 20, (9 << 20) + 13])
def test_pread_crc_equals_zlib(n, tmp_path):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    (tmp_path / "f").write_bytes(b"x" * 10 + data)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert pread_crc32(fd, 10, 10 + n, block=1 << 20) == zlib.crc32(data)
    finally:
        os.close(fd)
    a, b = data[: n // 3], data[n // 3 :]
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(data)


def test_round_trip_in_blocks(tmp_path, rng):
    x = rng.standard_normal((1000, 7)).astype(np.float32)
    norms = np.linalg.norm(x, axis=1).astype(np.float32)
    info = write_segment(tmp_path, "a.vseg", [x[:300], x[300:]], norms, np.arange(1000) + 5)
    seg = open_segment(tmp_path / "a.vseg", info)
    np.testing.assert_array_equal(seg.vectors, x)
    np.testing.assert_array_equal(seg.norms, norms)
    np.testing.assert_array_equal(seg.rids, np.arange(1000) + 5)
    assert not seg.vectors.flags.writeable
    assert not list(tmp_path.glob("*.tmp"))


def test_every_byte_flip_is_caught(tmp_path, rng):
    x = rng.standard_normal((20, 3)).astype(np.float32)
    info = write_segment(tmp_path, "a.vseg", [x], np.ones(20, np.float32), np.arange(20))
    raw = (tmp_path / "a.vseg").read_bytes()
    for offset in range(len(raw)):
        flipped = bytearray(raw)
        flipped[offset] ^= 1 << (offset % 8)
        (tmp_path / "b.vseg").write_bytes(flipped)
        with pytest.raises(CorruptStoreError):
            open_segment(tmp_path / "b.vseg", info)
    for size in (0, 5, 127, 128, len(raw) - 1):
        (tmp_path / "b.vseg").write_bytes(raw[:size])
        with pytest.raises(CorruptStoreError):
            open_segment(tmp_path / "b.vseg", info)
    (tmp_path / "b.vseg").write_bytes(raw + b"\0")
    with pytest.raises(CorruptStoreError):
        open_segment(tmp_path / "b.vseg", info)
    (tmp_path / "b.vseg").write_bytes(os.urandom(len(raw)))
    with pytest.raises(CorruptStoreError, match="magic|checksum"):
        open_segment(tmp_path / "b.vseg", info)


@pytest.mark.parametrize("threads,rows", [(1, 7), (2, 7), (2, 1000), (3, 4)])
def test_a_deferred_check_scans_every_row_once_then_passes(tmp_path, rng, threads, rows):
    x = rng.standard_normal((101, 5)).astype(np.float32)
    info = write_segment(tmp_path, "a.vseg", [x], np.ones(101, np.float32), np.arange(101))
    seg = open_segment(tmp_path / "a.vseg", info, defer=True)
    assert not seg.check.done
    seen = []
    seg.check.scan(lambda lo, hi: seen.append((lo, hi)), rows, threads)
    assert seg.check.done
    covered = np.zeros(101, dtype=int)
    for lo, hi in seen:
        assert hi - lo <= rows
        covered[lo:hi] += 1
    assert (covered == 1).all()
    seen.clear()
    seg.check.scan(lambda lo, hi: seen.append((lo, hi)), 50)  # passed: a plain scan
    assert sorted(seen) == [(0, 50), (50, 100), (100, 101)]


def test_every_byte_flip_is_caught_by_a_deferred_check(tmp_path, rng):
    # Past the header (which open_segment checks at once), a flip anywhere, in the vectors,
    # the padding, the norms or the rids, fails the scan's check and the plain one.
    x = rng.standard_normal((20, 3)).astype(np.float32)
    info = write_segment(tmp_path, "a.vseg", [x], np.ones(20, np.float32), np.arange(20))
    raw = (tmp_path / "a.vseg").read_bytes()
    for offset in range(128, len(raw)):
        flipped = bytearray(raw)
        flipped[offset] ^= 1 << (offset % 8)
        (tmp_path / "b.vseg").write_bytes(flipped)
        for how in ("scan", "run"):
            seg = open_segment(tmp_path / "b.vseg", info, defer=True)
            with pytest.raises(CorruptStoreError, match="checksum"):
                if how == "scan":
                    seg.check.scan(lambda lo, hi: None, 3, 2)
                else:
                    seg.check.run()
            assert not seg.check.done


def test_read_rows_reads_the_file_mapped_even_once_unlinked(tmp_path, rng):
    # read_rows keeps the file it opened first: a compaction that unlinks it changes nothing;
    # a segment whose file is gone before its first read falls back to the map
    x = rng.standard_normal((500, 9)).astype(np.float32)
    norms = np.linalg.norm(x, axis=1).astype(np.float32)
    info = write_segment(tmp_path, "a.vseg", [x], norms, np.arange(500))
    seg = open_segment(tmp_path / "a.vseg", info)
    late = open_segment(tmp_path / "a.vseg", info)
    pos = np.array([0, 1, 2, 17, 250, 499], dtype=np.int64)  # a run of three, then singles
    got = seg.read_rows(pos)
    np.testing.assert_array_equal(got, x[pos])
    got[0, 0] = 1.0  # a new, writable array
    os.unlink(tmp_path / "a.vseg")
    np.testing.assert_array_equal(seg.read_rows(pos), x[pos])
    np.testing.assert_array_equal(late.read_rows(pos), x[pos])
    assert seg.read_rows(pos[:0]).shape == (0, 9)
