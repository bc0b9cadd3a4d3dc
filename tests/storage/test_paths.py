"""Store paths and file maps: names, containment, regular files, descriptor-free maps."""

from __future__ import annotations

import gc
import mmap
import os

import numpy as np
import pytest

from vecstore.errors import CorruptStoreError
from vecstore.storage import paths
from vecstore.storage.mapping import FileMap


@pytest.mark.parametrize(
    "name, ok",
    [
        ("docs-0123456789ab", True),
        ("0123456789abcdef0123456789abcdef.vseg", True),
        ("a.b-c_d", True),
        ("..x", True),  # a name that starts with dots is still one component
        ("", False),
        (".", False),
        ("..", False),
        ("../victim", False),
        ("a/b", False),
        ("/etc", False),
        ("a\\b", False),
        ("a\0b", False),
        ("x" * 256, False),
        (7, False),
        (None, False),
        (b"name", False),
    ],
)
def test_only_plain_names_pass(name, ok):
    assert (paths.name_problem(name) is None) == ok
    if not ok:
        with pytest.raises(CorruptStoreError, match="store names only files inside it"):
            paths.plain_name(name, "a segment file", "catalog.db")


def test_collection_folders_must_stay_inside_the_store(tmp_path):
    root = tmp_path / "store"
    (root / "collections" / "a").mkdir(parents=True)
    (root / "collections" / "b").symlink_to(root / "collections" / "a")  # inside: fine
    (root / "collections" / "c").symlink_to(tmp_path)  # leaves the store
    assert paths.collection_dir(root, "a") == root / "collections" / "a"
    assert paths.collection_dir(root, "b") == root / "collections" / "b"
    with pytest.raises(CorruptStoreError, match="leads outside the store"):
        paths.collection_dir(root, "c")
    with pytest.raises(CorruptStoreError, match="not a plain name"):
        paths.collection_dir(root, "../..")


def test_open_regular_refuses_what_is_not_a_regular_file(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "file")
    os.close(paths.open_regular(tmp_path / "file", "segment file"))
    for name, kind in [("fifo", "a FIFO"), ("dir", "a directory"), ("link", "a symbolic link")]:
        with pytest.raises(CorruptStoreError, match=f"is {kind}, not a regular file"):
            paths.open_regular(tmp_path / name, "segment file")
    with pytest.raises(CorruptStoreError, match="a directory"):
        paths.open_regular(tmp_path / "dir", "the writer lock", write=True)
    with pytest.raises(FileNotFoundError):
        paths.open_regular(tmp_path / "missing", "segment file")


def test_a_file_map_outlives_its_descriptor_and_its_owner(tmp_path):
    data = np.arange(4096, dtype=np.float32)
    (tmp_path / "f").write_bytes(data.tobytes())
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    fmap = FileMap(fd, data.nbytes)
    os.close(fd)
    a = np.frombuffer(fmap.view, dtype="<f4", count=100, offset=400)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a.flags.writeable = True  # mapped read-only: a write would crash the process
    fmap.madvise(mmap.MADV_DONTNEED)  # clean file pages: they fault back in
    del fmap
    gc.collect()
    np.testing.assert_array_equal(a, data[100:200])  # the array keeps the pages mapped
    with pytest.raises(ValueError):
        FileMap(0, 0)
