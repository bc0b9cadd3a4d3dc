"""Collections to and from Arrow tables and pandas DataFrames: awkward values come back
exactly, vectors are a fixed-size float32 list, and what cannot round-trip is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")

import vecstore  # noqa: E402
from tests.conftest import typed  # noqa: E402

AWKWARD = [
    {"s": "héllo wörld ✓ 向量 🚀", "empty": "", "nul": "a\x00b"},
    {"big": 2**63 - 1, "neg": -(2**63), "zero": -0.0, "tiny": 5e-324, "f": 0.1},
    {"flag": True, "one": 1, "onef": 1.0, "none": None, "list": [1, "x", None, 2.5, False]},
    {},
]


@pytest.fixture
def coll(db):
    c = db.create_collection("c", dim=3, metric="l2")
    c.add(
        ["a", "β", "c", "d"],
        vectors=np.array([[1, 2, 3], [0, 0, 0], [-1.5, 1e-15, 1e16], [3, 2, 1]], np.float32),
        documents=["first", "", None, "ünïcode\n\ttabs"],
        metadata=AWKWARD,
    )
    return c


def test_to_arrow_round_trip_is_exact(coll, db):
    table = coll.to_arrow()
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 3)
    assert table.column("id").to_pylist() == ["a", "β", "c", "d"]
    assert table.column("document").to_pylist() == ["first", "", None, "ünïcode\n\ttabs"]
    meta = [json.loads(m) for m in table.column("metadata").to_pylist()]
    assert typed(meta) == typed(AWKWARD)
    copy = db.create_collection("copy", dim=3, metric="l2")
    assert copy.add_arrow(table, batch_size=3) == 4
    a, b = coll.get(include_vectors=True), copy.get(include_vectors=True)
    assert a.ids == b.ids and a.documents == b.documents
    assert typed(a.metadata) == typed(b.metadata)
    assert a.vectors.tobytes() == b.vectors.tobytes()


def test_filters_and_no_vectors(coll):
    table = coll.to_arrow(where={"flag": True}, include_vectors=False)
    assert table.column_names == ["id", "document", "metadata"]
    assert table.column("id").to_pylist() == ["c"]


def test_pandas_round_trip(coll, db):
    frame = coll.to_pandas()
    assert list(frame.columns) == ["id", "document", "vector", "metadata"]
    assert frame["vector"][0].dtype == np.float32
    assert typed(list(frame["metadata"])) == typed(AWKWARD)
    copy = db.create_collection("copy", dim=3, metric="l2")
    frame["metadata"] = [json.dumps(m) for m in frame["metadata"]]
    copy.add_dataframe(frame)
    assert typed(copy.get().metadata) == typed(AWKWARD)
    assert (
        copy.get(include_vectors=True).vectors.tobytes()
        == coll.get(include_vectors=True).vectors.tobytes()
    )


def test_flat_columns(db):
    c = db.create_collection("flat", dim=2)
    c.add(["x", "y"], vectors=[[1, 0], [0, 1]],
          metadata=[{"lang": "en", "year": 2020}, {"lang": "de"}])  # fmt: skip
    frame = c.to_pandas(flatten=True, include_vectors=False)
    assert list(frame["lang"]) == ["en", "de"]
    # a DataFrame with metadata columns: NaN / null leaves the key out
    copy = db.create_collection("copy", dim=2)
    frame = pd.DataFrame({"key": ["x", "y"], "v": [[1.0, 0.0], [0.0, 1.0]],
                          "lang": ["en", "de"], "year": [2020, None]})  # fmt: skip
    copy.add_dataframe(frame, id="key", vector="v", metadata=["lang", "year"])
    assert copy.get().metadata == [{"lang": "en", "year": 2020.0}, {"lang": "de"}]
    mixed = db.create_collection("mixed", dim=2)
    mixed.add(["p", "q"], vectors=[[1, 0], [0, 1]], metadata=[{"k": 1}, {"k": 1.0}])
    with pytest.raises(vecstore.InvalidInput, match="several kinds"):
        mixed.to_arrow(flatten=True)


def test_refusals(db):
    c = db.create_collection("r", dim=2)
    table = pa.table({"id": ["a"], "vector": [[float("nan"), 1.0]]})
    with pytest.raises(vecstore.InvalidInput):
        c.add_arrow(table)
    nan_meta = pa.table({"id": ["a"], "vector": [[1.0, 1.0]], "m": [float("nan")]})
    with pytest.raises(vecstore.InvalidInput, match="finite"):
        c.add_arrow(nan_meta, metadata=["m"])  # in Arrow a NaN is a value, not a null
    holes = pa.table({"id": ["a", "b"], "vector": [[1.0, 1.0], None]})
    with pytest.raises(vecstore.InvalidInput, match="nulls"):
        c.add_arrow(holes)
    assert c.count() == 0
    with pytest.raises(vecstore.InvalidInput, match="no column 'text'"):
        c.add_arrow(table, text="text")
    with pytest.raises(vecstore.InvalidInput, match="Table"):
        c.add_arrow({"id": ["a"]})
    assert c.get(["zz"]).ids == []


def _mapped_file(address: int) -> str | None:
    """The file whose mapping holds ``address`` in this process, from /proc/self/maps."""
    for line in open("/proc/self/maps"):
        fields = line.split()
        lo, hi = (int(v, 16) for v in fields[0].split("-"))
        if lo <= address < hi:
            return fields[5] if len(fields) > 5 else None
    return None


def test_to_arrow_vectors_are_the_mapped_segments(db):
    # A segment without deleted or filtered-out rows is handed to Arrow as it is mapped: the
    # column's buffer lies inside the segment file's mapping, and stays valid after the
    # collection is compacted away beneath it. A filtered part is a gathered copy.
    c = db.create_collection("z", dim=4)
    x = np.arange(4000, dtype=np.float32).reshape(1000, 4)
    c.add([f"r{i}" for i in range(1000)], vectors=x, metadata=[{"odd": i % 2} for i in range(1000)])
    c.compact()
    table = c.to_arrow()
    (chunk,) = table.column("vector").chunks
    mapped = _mapped_file(chunk.values.buffers()[1].address)
    assert mapped is not None and mapped.startswith(str(db.path))
    c.delete(["r0"])
    c.compact()
    assert np.array_equal(np.asarray(chunk.values).reshape(-1, 4), x)
    assert table.column("id").to_pylist()[:2] == ["r0", "r1"]
    odd = c.to_arrow(where={"odd": 1})
    (gathered,) = odd.column("vector").chunks
    assert not str(_mapped_file(gathered.values.buffers()[1].address)).startswith(str(db.path))
    assert np.array_equal(np.asarray(gathered.values).reshape(-1, 4), x[1::2])
