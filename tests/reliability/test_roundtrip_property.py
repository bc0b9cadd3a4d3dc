"""Every string and number a user can store comes back exactly, or is refused with
``InvalidInput`` and changes nothing, through every write path (Hypothesis, derandomized).

Generated rows (ids, documents, metadata keys and values, float32 vectors) favour what breaks
stores: NUL and other control characters, escape sequences, line and paragraph separators,
byte-order marks, non-characters, astral characters, ``-0.0``, subnormals, the vector
magnitude limits, 64-bit integer bounds; a quarter of the batches carry one value that must
be refused (lone surrogates, NaN, infinities, ints past 64 bits, nested values, components
past the limits, ...). An oracle written from the documented limits (docs/api.md,
docs/reliability.md) decides which; then the rows go through:

- the API: ``add``, ``upsert`` (replacing rows), ``update``, ``add_batches``;
- import: a hand-written export file (``import_collection``), and ``export`` then
  ``import_collection`` of what was stored, as JSON Lines and as Parquet (CLI and API);
- ingest: a ``.jsonl`` file through the CLI, a ``.csv`` file through ``Collection.ingest``
  (documented conversions: values metadata cannot hold become JSON text; CSV cells that are
  numbers become numbers, empty ones None; the id and document fields stay as written).

Each stored collection is read back through a second, read-only handle. ``pytest --long``
runs 20 times as many examples.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import vecstore
from tests.conftest import hashing_encoder, typed
from vecstore import cli
from vecstore.encoders import CallableEncoder

DIM = 3
EXAMPLES, LONG_EXAMPLES = 6, 120
ENCODER = "tests.conftest:hashing_encoder"
RECORD_KEYS = ("source", "line", "content_hash", "source_hash")  # what ingest adds
ID_FIELD, TEXT_FIELD = "@id", "@text"
F32_MAX, F32_MIN = float(np.float32(1e16)), float(np.float32(1e-15))  # the documented limits
INT64 = range(-(2**63), 2**63)

# ---------------------------------------------------------------------------------------------
# the oracle: the documented limits, restated
# ---------------------------------------------------------------------------------------------


def utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_id(i: Any) -> bool:
    return (
        isinstance(i, str) and i != "" and "\x00" not in i and utf8(i) and len(i.encode()) <= 2048
    )


def valid_doc(d: Any) -> bool:
    return d is None or (isinstance(d, str) and utf8(d))


def valid_key(k: Any) -> bool:
    return isinstance(k, str) and k != "" and not k.startswith("$") and len(k) <= 256 and utf8(k)


def valid_scalar(v: Any) -> bool:
    if v is None or isinstance(v, bool):
        return True
    if isinstance(v, int):
        return v in INT64
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, str) and utf8(v)


def valid_value(v: Any) -> bool:
    return all(map(valid_scalar, v)) if isinstance(v, list) else valid_scalar(v)


def valid_meta(m: Any) -> bool:
    return m is None or all(valid_key(k) and valid_value(v) for k, v in m.items())


def valid_vector(row: np.ndarray) -> bool:
    big = float(np.max(np.abs(row)))
    return bool(np.isfinite(row).all()) and big <= F32_MAX and (big == 0 or big >= F32_MIN)


def accepted(rows: list[dict]) -> bool:
    return all(
        valid_id(r["id"])
        and valid_doc(r["document"])
        and valid_meta(r["metadata"])
        and valid_vector(r["vector"])
        for r in rows
    )


# ---------------------------------------------------------------------------------------------
# generated rows
# ---------------------------------------------------------------------------------------------

SPECIALS = list("\x00\x01\x07\x08\t\n\r\x1b\x7f\x85\x9b\u2028\u202e\ufeff\uffff$é中🙂 ,\"'\\")
SPECIALS += ["\U0010ffff", "\x1b[2J", "\r\n", "e\u0301", "ｶﾞ"]
text = st.lists(st.sampled_from(SPECIALS) | st.characters(), max_size=6).map("".join)
scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.sampled_from([-(2**63), 2**63 - 1, -0.0, 5e-324, 1.7976931348623157e308])
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
value = scalar | st.lists(scalar, max_size=3)
component = st.sampled_from(
    [0.0, -0.0, 1.0, -2.5, F32_MAX, -F32_MAX, F32_MIN, 1.4e-45]
) | st.floats(-1e6, 1e6, width=32)
POISONS = [
    ("id", ""),
    ("id", "a\x00b"),
    ("id", "x" * 2049),
    ("id", "\ud800"),
    ("document", "ok\udfff"),
    ("key", ""),
    ("key", "$k"),
    ("key", "k" * 257),
    ("key", "\ud800"),
    ("value", math.nan),
    ("value", math.inf),
    ("value", -math.inf),
    ("value", 2**63),
    ("value", -(2**63) - 1),
    ("value", [1, math.inf]),
    ("value", [[1]]),
    ("value", {"a": 1}),
    ("value", "\ud800"),
    ("vector", math.nan),
    ("vector", math.inf),
    ("vector", 1e17),
    ("vector", 3e38),
    ("vector", "tiny"),
]


@st.composite
def batches(draw) -> list[dict]:
    n = draw(st.integers(1, 3))
    ids = draw(st.lists(text.filter(bool), min_size=n, max_size=n, unique=True))
    rows = [
        {
            "id": i,
            "document": draw(st.none() | text),
            "metadata": draw(st.none() | st.dictionaries(text, value, max_size=3)),
            "vector": np.array(draw(st.lists(component, min_size=DIM, max_size=DIM)), np.float32),
        }
        for i in ids
    ]
    if draw(st.integers(0, 3)) == 0:
        poison(rows[draw(st.integers(0, n - 1))], *draw(st.sampled_from(POISONS)))
    return rows


def poison(row: dict, field: str, bad: Any) -> None:
    if field in ("id", "document"):
        row[field] = bad
    elif field == "key":
        row["metadata"] = {**(row["metadata"] or {}), bad: 1}
    elif field == "value":
        row["metadata"] = {**(row["metadata"] or {}), "k": bad}
    elif bad == "tiny":
        row["vector"] = np.full(DIM, 1e-20, np.float32)
    else:
        with np.errstate(over="ignore"):
            row["vector"][0] = np.float32(bad)


# ---------------------------------------------------------------------------------------------
# reading back
# ---------------------------------------------------------------------------------------------


def stored(coll, ids: list[str], *, vectors: bool = True) -> list:
    got = coll.get(ids, include_vectors=vectors)
    vecs = got.vectors if vectors else [None] * len(got)
    return [
        (i, d, typed(m), None if v is None else v.tobytes())
        for i, d, m, v in zip(got.ids, got.documents, got.metadata, vecs)
    ]


def expected(rows: list[dict]) -> list:
    return [
        (r["id"], r["document"], typed(r["metadata"] or {}), r["vector"].tobytes()) for r in rows
    ]


def settle(write, ok: bool) -> None:
    """Run ``write``: it must succeed when the oracle says ``ok``, else raise InvalidInput."""
    if ok:
        write()
    else:
        with pytest.raises(vecstore.InvalidInput):
            write()


# ---------------------------------------------------------------------------------------------
# ingest: the documented conversions
# ---------------------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?\d{1,19}")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def as_metadata(v: Any) -> Any:
    """A record value as ingest stores it: values metadata holds as they are, others (nested,
    NaN, infinities, ints past 64 bits) as their JSON text."""
    if isinstance(v, list) and all(not isinstance(x, (list, dict)) for x in v):
        if all(map(valid_scalar, v)):
            return v
    elif not isinstance(v, (list, dict)) and valid_scalar(v):
        return v
    return json.dumps(v, ensure_ascii=False)


def csv_cell(v: str) -> Any:
    """A CSV metadata cell as ingest stores it: numbers as numbers, empty cells None."""
    if v == "":
        return None
    if _INT.fullmatch(v):
        return int(v) if int(v) in INT64 else v
    if _FLOAT.fullmatch(v):
        return float(v) if math.isfinite(float(v)) else v
    return v


def ingest_ok(records: list[tuple[Any, Any, dict]]) -> bool:
    """Whether ingest takes records of (id, document, user fields)."""
    for id_, doc, meta in records:
        if not (valid_id(id_) and isinstance(doc, str) and utf8(doc)):
            return False
        for k, v in meta.items():
            if not valid_key(k) or k in RECORD_KEYS or not valid_value(as_metadata(v)):
                return False
    return True


def user_fields(meta: dict | None) -> dict:
    return {k: v for k, v in (meta or {}).items() if k not in (ID_FIELD, TEXT_FIELD)}


def string_field(meta: dict | None, key: str) -> str:
    v = (meta or {}).get(key)
    return v if isinstance(v, str) else ""


def check_ingested(coll, records: list[tuple[str, str, dict]]) -> None:
    got = coll.get([r[0] for r in records])
    assert got.ids == [r[0] for r in records]
    assert got.documents == [r[1] for r in records]
    for m, (_, _, fields) in zip(got.metadata, records):
        assert typed({k: m[k] for k in fields}) == typed(fields)
        assert set(m) == set(fields) | set(RECORD_KEYS)


# ---------------------------------------------------------------------------------------------
# the property
# ---------------------------------------------------------------------------------------------

EXAMPLE_ROWS = [
    [
        {
            "id": "\x1b]0;t\x07\u2028",
            "document": "abc\x00def\x1b[2J\u202e\r\n",
            "metadata": {"\x00k\x85": "\x00v\x9b", "l": ["\x00", -0.0, 2**63 - 1, None, True]},
            "vector": np.array([F32_MAX, -0.0, 1.4e-45], np.float32),
        },
        {
            "id": "ｶﾞ\U0010ffff",
            "document": "\x00",
            "metadata": None,
            "vector": np.array([0.0, -0.0, 0.0], np.float32),
        },
    ],
    [{"id": "a", "document": "x", "metadata": {"k": math.inf}, "vector": np.ones(DIM, "f4")}],
    [{"id": "a", "document": None, "metadata": None, "vector": np.full(DIM, 1e-20, "f4")}],
    [{"id": "a", "document": "\x00", "metadata": {"k": 2**64}, "vector": np.ones(DIM, "f4")}],
    [
        {
            "id": "007",
            "document": "42",
            "metadata": {"n": "+5", "e": ""},
            "vector": np.ones(DIM, "f4"),
        }
    ],
]


def test_every_value_round_trips_exactly_or_is_refused(tmp_path_factory, long_run):
    pyarrow = pytest.importorskip("pyarrow")
    assert pyarrow
    root = tmp_path_factory.mktemp("roundtrip")
    store = root / "s"
    names = (f"c{i}" for i in itertools.count())
    db = vecstore.open(store, durability="normal", progress=False)

    def embedding(name: str):
        return db.create_collection(
            name, encoder=CallableEncoder(hashing_encoder, dim=16, name="h")
        )

    @settings(
        max_examples=LONG_EXAMPLES if long_run else EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(batches())
    @example(EXAMPLE_ROWS[0])
    @example(EXAMPLE_ROWS[1])
    @example(EXAMPLE_ROWS[2])
    @example(EXAMPLE_ROWS[3])
    @example(EXAMPLE_ROWS[4])
    def check(rows: list[dict]) -> None:
        ok = accepted(rows)
        ids = [r["id"] for r in rows]
        x = np.stack([r["vector"] for r in rows])
        docs = [r["document"] for r in rows]
        metas = [r["metadata"] for r in rows]
        want = expected(rows)
        safe_ids = all(map(valid_id, ids))

        # API: add
        added = db.create_collection(next(names), dim=DIM)
        settle(lambda: added.add(ids, vectors=x, documents=docs, metadata=metas), ok)
        assert (stored(added, ids) if ok else added.count()) == (want if ok else 0)

        # API: upsert over existing rows, update of existing rows (when the ids can exist)
        for how in ("upsert", "update"):
            c = db.create_collection(next(names), dim=DIM)
            if safe_ids:
                c.add(ids, vectors=np.ones((len(ids), DIM)), metadata=[{"old": 1}] * len(ids))
            before = stored(c, ids) if safe_ids else []
            write = c.upsert if how == "upsert" else c.update
            settle(lambda: write(ids, vectors=x, documents=docs, metadata=metas), ok)  # noqa: B023
            assert stored(c, ids) == (want if ok else before) if safe_ids else c.count() == 0

        # API: add_batches
        c = db.create_collection(next(names), dim=DIM)
        settle(lambda: c.add_batches(rows), ok)
        assert (stored(c, ids) if ok else c.count()) == (want if ok else 0)

        # import: a hand-written export file (Python's JSON carries NaN and infinities)
        head = {"format": "vecstore-export", "version": 1, "dim": DIM, "metric": "cosine"}
        lines = [json.dumps(head | {"collection": "x"})] + [
            json.dumps(r | {"vector": r["vector"].tolist()}) for r in rows
        ]
        src = root / "hand.jsonl"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        name = next(names)
        settle(lambda: db.import_collection(src, name=name), ok)
        if ok:
            assert stored(db.get_collection(name), ids) == want
        else:  # an import is all or nothing
            assert name not in db.list_collections()

        if ok:  # export what was stored, import it: through the API and through the CLI
            for fmt in ("jsonl", "parquet"):
                out = root / f"out.{fmt}"
                added.export(out)
                copy = db.import_collection(out, name=next(names))
                assert stored(db.get_collection(copy.collection), ids) == want
                name = next(names)
                s = str(store)
                assert cli.main(["-q", "export", s, added.name, str(out), "--format", fmt]) == 0
                assert cli.main(["-q", "import", s, str(out), "--name", name]) == 0
                assert stored(db.get_collection(name), ids) == want
            with vecstore.open(store, read_only=True) as ro:  # a second handle, from disk
                assert stored(ro.get_collection(added.name), ids) == want

        # ingest .jsonl through the CLI
        records = [
            {**user_fields(r["metadata"]), ID_FIELD: r["id"], TEXT_FIELD: r["document"]}
            for r in rows
        ]
        triples = [(r[ID_FIELD], r[TEXT_FIELD], user_fields(r)) for r in records]
        folder = root / f"in-{next(names)}"
        folder.mkdir()
        try:  # ensure_ascii: a lone surrogate travels as an escape, and is refused on reading
            body = "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records)
        except TypeError:
            body = None  # a value JSON cannot carry at all (the API refused it above)
        if body is not None:
            (folder / "rows.jsonl").write_text(body, encoding="utf-8")
            name = next(names)
            args = ["ingest", str(store), name, str(folder / "rows.jsonl"), "--encoder", ENCODER]
            args += ["--id-field", ID_FIELD, "--text-field", TEXT_FIELD, "-q"]
            good = ingest_ok(triples)
            assert cli.main(args) == (0 if good else 2)
            c = db.get_collection(name)
            if good:
                stores_as = [
                    (i, d, {k: as_metadata(v) for k, v in f.items()}) for i, d, f in triples
                ]
                check_ingested(c, stores_as)
            else:
                assert c.count() == 0

        # ingest .csv through the API: string cells, the first row's string-valued fields
        columns = [k for k, v in user_fields(rows[0]["metadata"]).items() if isinstance(v, str)]
        table = [
            [r["id"], r["document"] or "", *(string_field(r["metadata"], k) for k in columns)]
            for r in rows
        ]
        buf = io.StringIO(newline="")
        writer = csv.writer(buf)
        writer.writerow([ID_FIELD, TEXT_FIELD, *columns])
        writer.writerows(table)
        path = folder / "rows.csv"
        path.write_bytes(buf.getvalue().encode("utf-8", "surrogatepass"))
        cells = [(t[0], t[1], {k: csv_cell(v) for k, v in zip(columns, t[2:])}) for t in table]
        good = ingest_ok(cells) and utf8(buf.getvalue()) and len(set(columns)) == len(columns)
        c = embedding(next(names))
        settle(lambda: c.ingest(path, id_field=ID_FIELD, text_field=TEXT_FIELD), good)
        if good:
            check_ingested(c, cells)
        else:
            assert c.count() == 0

    try:
        check()
        assert db.verify().ok
    finally:
        db.close()
