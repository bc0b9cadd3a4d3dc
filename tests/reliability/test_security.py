"""Security: nothing a store holds can run code, user strings never become SQL or paths, and
every input limit gives a clear, typed error.

- Code: no pickle, marshal, eval, exec, compile or ``__import__`` in the package (its syntax
  trees, so words in docstrings and comments do not count); every ``np.load`` passes
  ``allow_pickle=False`` and no model load trusts remote code; no file or catalog value a store
  writes is a pickle, and a pickle planted in a store is refused, never run.
- SQL: fuzzed filter trees with hostile keys and values (quotes, ``'; DROP TABLE``, NUL,
  ``%``, ``_``, unicode, 100k-character strings) compile, through the path queries take, to
  SQL text that depends only on the tree's shape; every key and value is a bound parameter.
- Paths: collection names outside the documented pattern are refused with ``InvalidInput``,
  however they arrive, and no name makes a store touch a file outside its directory.
- Limits: each input limit accepts its bound (where that is cheap to show) and refuses one
  past it with ``InvalidInput`` naming the limit, changing nothing.

tests/storage/test_filters.py checks filter semantics and shape-only SQL with metacharacter
strings; tests/test_collection.py and tests/test_database.py check that bad writes, k, dim and
names raise. This file adds the limits' bounds and messages and the hostile-input angle.
"""

from __future__ import annotations

import ast
import json
import pickle  # the tests plant pickles; the package itself must never import it
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vecstore
from vecstore import inputs
from vecstore.storage import filters
from vecstore.storage.filters import compile_filters, rid_query
from vecstore.storage.records import MAX_META_BYTES
from vecstore.text import contains_terms

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------------------------
# code: what the package's source may not do
# ---------------------------------------------------------------------------------------------

PACKAGE = Path(vecstore.__file__).resolve().parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
UNSAFE_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"}
UNSAFE_MODULES |= {"joblib", "copyreg", "code", "codeop"}
UNSAFE_NAMES = {"eval", "exec", "compile", "__import__", "breakpoint"}
UNSAFE_CALLS = {"torch.load", "yaml.load", "yaml.unsafe_load", "os.system", "os.popen"}
# Where modules are imported by name, each reviewed: the CLI's --encoder module:function,
# which the user names on their own command line (callable encoders are never stored); and
# the packaged-model lookup, which turns a (possibly stored) model name into the name of an
# installed package, gt_[0-9a-z_]+, so a store can select an installed package but never
# supply code.
IMPORT_BY_NAME = {
    "commands.py": 1,
    "encoders/sentence_transformers.py": 1,
    # need(module, extra): the integrations' own framework names, written in the code
    "integrations/deps.py": 1,
}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return "?"


def unsafe(source: str, name: str = "<src>") -> list[str]:
    """Every construct of ``source`` that could run stored data as code, as ``line: what``.
    Imports as ``import_module`` calls are listed too, for the caller to allow."""
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"{line}: import {a.name}" for a in node.names if _unsafe_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and _unsafe_module(node.module or ""):
            found.append(f"{line}: from {node.module} import")
        elif isinstance(node, ast.Name) and node.id in UNSAFE_NAMES:
            found.append(f"{line}: {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in UNSAFE_NAMES:
            if dotted(node.value) in ("builtins", "__builtins__"):  # not re.compile, m.eval()
                found.append(f"{line}: {dotted(node)}")
        elif isinstance(node, ast.Call):
            func = dotted(node.func)
            short = func.replace("numpy.", "np.")
            kw = {k.arg: k.value for k in node.keywords}
            if func in UNSAFE_CALLS or func.endswith(".import_module") or func == "import_module":
                found.append(f"{line}: {func}()")
            if short in ("np.load", "np.save", "np.savez", "np.savez_compressed"):
                if not _is_false(kw.get("allow_pickle")):
                    found.append(f"{line}: {func}() without allow_pickle=False")
            if "allow_pickle" in kw and not _is_false(kw["allow_pickle"]):
                found.append(f"{line}: {func}(allow_pickle=...) not False")
            if "trust_remote_code" in kw and not _is_false(kw["trust_remote_code"]):
                found.append(f"{line}: {func}(trust_remote_code=...) not False")
            if "shell" in kw and not _is_false(kw["shell"]):
                found.append(f"{line}: {func}(shell=...) not False")
            if func == "getattr" and len(node.args) > 1:
                attr = node.args[1]
                if isinstance(attr, ast.Constant) and attr.value in UNSAFE_NAMES:
                    found.append(f"{line}: getattr(..., {attr.value!r})")
    return found


def _unsafe_module(name: str) -> bool:
    return name.split(".")[0] in UNSAFE_MODULES


def _is_false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def test_the_scanner_finds_what_it_looks_for():
    bad = """
import pickle, marshal as m
from dill import loads
import numpy as np, builtins, importlib
x = eval("1"); exec("x = 1"); f = compile("1", "", "eval"); g = __import__("os")
builtins.eval("1"); getattr(builtins, "exec")("1")
np.load("a.npy"); np.load("a.npy", allow_pickle=True); np.save("a", x)
torch.load("m.pt"); importlib.import_module("os"); os.system("ls")
subprocess.run("ls", shell=True); Model.from_pretrained("m", trust_remote_code=True)
"""
    found = unsafe(bad)
    for what in [
        "import pickle",
        "import marshal",
        "from dill",
        ": eval",
        ": exec",
        ": compile",
        "__import__",
        "builtins.eval",
        "getattr(..., 'exec')",
        "np.load() without allow_pickle=False",
        "allow_pickle=...",
        "np.save() without",
        "torch.load()",
        "importlib.import_module()",
        "os.system()",
        "shell=",
        "trust_remote_code",
    ]:
        assert any(what in f for f in found), (what, found)
    fine = '''
"""Docstrings may say pickle, eval(x), exec and import pickle."""
import re, numpy as np  # a comment: eval(), pickle.loads
pattern = re.compile("a")  # attributes named compile or eval are fine
model.eval()
x = np.load("a.npy", allow_pickle=False)
s = "exec(code)"
'''
    assert unsafe(fine) == []


def test_package_source_runs_no_stored_data_as_code():
    assert len(SOURCES) > 30
    found = {}
    for path in SOURCES:
        hits = unsafe(path.read_text(encoding="utf-8"), str(path))
        allowed = IMPORT_BY_NAME.get(path.relative_to(PACKAGE).as_posix(), 0)
        imports = [h for h in hits if "import_module()" in h]
        others = [h for h in hits if "import_module()" not in h]
        if others or len(imports) != allowed:
            found[path.relative_to(PACKAGE).as_posix()] = hits
    assert found == {}


PICKLE_PROTOCOLS = {bytes([0x80, p]) for p in range(2, 6)}
FOREIGN_MAGIC = {b"\x93NUMPY": "a .npy file", b"PK\x03\x04": "a zip (.npz) file"}


def pickle_like(data: bytes) -> str | None:
    """What ``data`` is if it is a pickle (protocol 2 or later, every protocol Python has
    defaulted to since 3.0) or a NumPy file (which may hold pickles), else None."""
    if data[:2] in PICKLE_PROTOCOLS:
        return "a pickle"
    for magic, what in FOREIGN_MAGIC.items():
        if data.startswith(magic):
            return what
    return None


def test_pickle_detector():
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        assert pickle_like(pickle.dumps({"a": [1]}, protocol=protocol)) == "a pickle"
    assert pickle_like(b"SQLite format 3\x00") is None and pickle_like(b"") is None


def rich_store(path: Path) -> None:
    """A store using every kind of file and record: segments, an IVF-PQ model and lists,
    pending rows, tombstones, metadata, documents in the keyword index, two collections."""
    rng = np.random.default_rng(0)
    with vecstore.open(path, seal_rows=64) as db:
        c = db.create_collection(
            "indexed", dim=8, index=vecstore.IVFPQ(nlist=4, m=4, nbits=4, min_rows=200)
        )
        ids = [f"r{i}" for i in range(300)]
        c.add(
            ids,
            vectors=rng.standard_normal((300, 8)),
            documents=[f"document number {i} about vectors" for i in range(300)],
            metadata=[{"i": i, "tags": ["a", str(i % 3)], "x": i / 7} for i in range(300)],
        )
        assert c.index_info()["trained"]
        c.delete(ids[:10])
        c.upsert(["p1", "p2"], vectors=rng.standard_normal((2, 8)), metadata=[{"p": 1}] * 2)
        plain = db.create_collection("plain", dim=4)
        plain.add(["a", "b"], vectors=np.eye(4)[:2], documents=["x", None])
        plain.compact()


def catalog_values(catalog: Path) -> list[tuple[str, str, bytes | str]]:
    """Every text and blob value of every table of a (closed) store's catalog."""
    out = []
    conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
    try:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cur = conn.execute(f"SELECT * FROM [{table}]")  # names from sqlite_master
            cols = [d[0] for d in cur.description]
            for row in cur:
                out += [(table, c, v) for c, v in zip(cols, row) if isinstance(v, (bytes, str))]
    finally:
        conn.close()
    return out


def test_no_file_a_store_writes_is_a_pickle(tmp_path):
    rich_store(tmp_path / "store")
    with vecstore.open(tmp_path / "store") as db:
        db.backup(tmp_path / "backup")
        db.get_collection("indexed").export(tmp_path / "export.jsonl")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix == ".vidx"]) >= 2  # model and list files
    for p in files:
        assert pickle_like(p.read_bytes()[:16]) is None, p
        assert p.suffix not in (".pkl", ".pickle", ".npy", ".npz", ".joblib"), p
    values = catalog_values(tmp_path / "store" / "catalog.db")
    assert any(t == "rows" and c == "meta" for t, c, _ in values)  # msgpack records
    for table, column, value in values:
        raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        assert pickle_like(raw) is None, (table, column)


class Plant:
    """Unpickling this creates ``marker``: a stand-in for code a hostile store would run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant(path: Path, target: str, payload: bytes) -> None:
    """Put ``payload`` into the closed store at ``path``, where ``target`` says."""
    if target in ("segment", "index file"):
        suffix = ".vidx" if target == "index file" else ".vseg"
        files = sorted((path / "collections").rglob(f"*{suffix}"))
        assert files, suffix
        files[0].write_bytes(payload)
        return
    table, column = {
        "metadata record": ("rows", "meta"),
        "pending vector": ("pending", "vec"),
        "collection config": ("collections", "config"),
        "document": ("rows", "document"),
    }[target]
    conn = sqlite3.connect(path / "catalog.db")
    try:
        with conn:
            n = conn.execute(f"UPDATE [{table}] SET [{column}] = ?", (payload,)).rowcount
        assert n > 0, target
    finally:
        conn.close()


@pytest.fixture(scope="module")
def rich_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rich") / "store"
    rich_store(path)
    with vecstore.open(path) as db:  # leave vectors pending in the indexed collection
        db.get_collection("indexed").add(["q"], vectors=np.ones((1, 8)))
    return path


@pytest.mark.parametrize(
    "target",
    [
        "metadata record",
        "pending vector",
        "collection config",
        "document",
        "segment",
        "index file",
    ],
)
def test_a_planted_pickle_is_never_run(tmp_path, rich_template, target):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Plant(control)))  # the payload is live: unpickling runs it
    assert control.exists()
    marker = tmp_path / "marker"
    path = tmp_path / "store"
    shutil.copytree(rich_template, path)
    plant(path, target, pickle.dumps(Plant(marker)))
    error = None
    try:
        with vecstore.open(path, read_only=True) as db:
            for name in db.list_collections():
                c = db.get_collection(name)
                c.get(include_vectors=True)
                c.query(np.ones(c.dim), k=5, where={"i": {"$gte": 0}})
                c.query("document", mode="text", k=5)
            db.verify()
    except Exception as exc:  # refusing the planted data is right; running it never is
        error = exc
    assert not marker.exists()
    assert error is None or isinstance(error, vecstore.VecstoreError), repr(error)


# ---------------------------------------------------------------------------------------------
# SQL: filters with hostile keys and values
# ---------------------------------------------------------------------------------------------

PAYLOADS = [
    "'; DROP TABLE rows; --",
    "' OR '1'='1",
    '" OR ""="',
    "1) OR (1=1",
    "'); DELETE FROM rows; --",
    "*/ OR 1=1 /*",
    "\x00' OR 1=1",
    "\x00",
    "%",
    "_",
    "%_%",
    "\\",
    "?",
    "?1",
    ":name",
    "@p",
    "$1",
    "]",
    "[rows]",
    "`x`",
    "json_each(?)",
    "\u202e\u2066",
    "\ufeff",
    "İstanbul ß ﬁ",
    "向量数据库",
    "🙂" * 3,
    "\r\n\t",
    " x alpha x ",
]
hostile = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(min_size=1, max_size=20),
    st.builds(
        lambda s, n: s * n,
        st.sampled_from(["'", "%", "_", "\x00", "é", "a b "]),
        st.integers(1, 25_000),
    ),
)
hostile_key = hostile.filter(lambda s: not s.startswith("$"))
scalar = st.one_of(
    hostile, st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.booleans(), st.none()
)
ordered = st.one_of(hostile, st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False))
field = st.one_of(
    st.builds(lambda k, v: {k: v}, hostile_key, scalar),
    st.builds(
        lambda k, op, v: {k: {op: v}},
        hostile_key,
        st.sampled_from(["$eq", "$ne", "$contains"]),
        scalar,
    ),
    st.builds(
        lambda k, op, v: {k: {op: v}},
        hostile_key,
        st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
        ordered,
    ),
    st.builds(
        lambda k, op, vs: {k: {op: vs}},
        hostile_key,
        st.sampled_from(["$in", "$nin"]),
        st.lists(scalar, min_size=1, max_size=4),
    ),
)
where_trees = st.recursive(
    field,
    lambda c: st.one_of(
        st.builds(lambda cs: {"$and": cs}, st.lists(c, min_size=1, max_size=3)),
        st.builds(lambda cs: {"$or": cs}, st.lists(c, min_size=1, max_size=3)),
        st.builds(lambda x: {"$not": x}, c),
    ),
    max_leaves=6,
)
document_trees = st.recursive(
    st.builds(lambda op, s: {op: s}, st.sampled_from(["$contains", "$not_contains"]), hostile),
    lambda c: st.builds(
        lambda op, cs: {op: cs},
        st.sampled_from(["$and", "$or"]),
        st.lists(c, min_size=1, max_size=3),
    ),
    max_leaves=4,
)


def canonical(node, document: bool = False):
    """``node`` with every key and value the user wrote replaced by a fixed one of the same
    type. A ``where_document`` substring's fixed value has keyword-index terms just when the
    original has (``contains_terms`` picks between two fixed SQL fragments by that)."""
    if isinstance(node, dict):
        out = {}
        for i, (k, v) in enumerate(node.items()):
            if k in ("$and", "$or"):
                out[k] = [canonical(x, document) for x in v]
            elif k == "$not":
                out[k] = canonical(v, document)
            elif document:
                out[k] = " x alpha x " if contains_terms(v) else "v"
            elif k.startswith("$"):
                out[k] = [canonical(x) for x in v] if isinstance(v, list) else canonical(v)
            else:
                out[f"k{i}"] = canonical(v)
        return out
    if isinstance(node, bool) or node is None:
        return node and False
    if isinstance(node, (int, float, str)):
        return type(node)()
    raise AssertionError(node)


def user_strings(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if not k.startswith("$"):
                out.append(k)
            out += user_strings(v)
    elif isinstance(node, list):
        for v in node:
            out += user_strings(v)
    elif isinstance(node, str):
        out.append(node)
    return out


SQL_ALPHABET = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,()=<>?+")


def test_canonical_forms():
    assert contains_terms(" x alpha x ") and not contains_terms("v")
    assert canonical({"a'": {"$in": ["x", 2, 2.5, True, None]}}) == {
        "k0": {"$in": ["", 0, 0.0, False, None]}
    }


@settings(SETTINGS, max_examples=300)
@given(where=st.none() | where_trees, where_document=st.none() | document_trees)
def test_filter_sql_depends_only_on_shape(where, where_document):
    """Compiled as get and query compile them (with the keyword index's ``contains_terms``),
    hostile filters give the same SQL as their canonical forms: no key or value is ever part
    of the SQL text, all of them travel verbatim as parameters."""
    coll = 7
    sql, params = compile_filters(coll, where, where_document, contains_terms)
    fixed = compile_filters(
        coll,
        None if where is None else canonical(where),
        None if where_document is None else canonical(where_document, document=True),
        contains_terms,
    )[0]
    assert sql == fixed
    assert rid_query(sql) == rid_query(fixed)
    assert set(sql) <= SQL_ALPHABET, sql  # no quote, comment, semicolon or NUL can appear
    assert sql.count("?") == len(params)
    assert all(p is None or type(p) in (int, float, str) for p in params)
    for s in user_strings(where) + user_strings(where_document):
        assert any(p is s or p == s for p in params if isinstance(p, str))


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    """A collection whose ids, keys, values and documents are the hostile payloads."""
    path = tmp_path_factory.mktemp("hostile") / "store"
    with vecstore.open(path) as db:
        c = db.create_collection("c", dim=4)
        other = db.create_collection("other", dim=4)
        other.add(["o"], vectors=np.ones((1, 4)))
        keys = [p for p in PAYLOADS if not p.startswith("$")]
        ids = [p.replace("\x00", "NUL") for p in PAYLOADS]
        c.add(
            ids,
            vectors=np.random.default_rng(1).standard_normal((len(ids), 4)),
            documents=PAYLOADS,
            metadata=[
                {k: p for k in PAYLOADS[i : i + 3] if k in keys} | {"p": p}
                for i, p in enumerate(PAYLOADS)
            ],
        )
    with vecstore.open(path) as db:
        yield db, ids


@pytest.mark.parametrize("i", range(len(PAYLOADS)))
def test_hostile_strings_round_trip_and_filter_exactly(hostile_store, i):
    db, ids = hostile_store
    c = db.get_collection("c")
    p = PAYLOADS[i]
    assert c.get([ids[i]]).metadata[0]["p"] == p
    assert c.get(where={"p": p}).ids == [ids[i]]
    assert c.count({"p": {"$ne": p}}) == len(PAYLOADS) - 1
    if not p.startswith("$"):
        got = c.get(where={p: p})
        assert ids[i] in got.ids and all(m[p] == p for m in got.metadata)
    got = c.get(where_document={"$contains": p})
    assert ids[i] in got.ids and all(p in d for d in got.documents)
    assert c.query(np.ones(4), k=50, where={"p": {"$in": [p, "-"]}}).ids == [ids[i]]
    assert sorted(db.list_collections()) == ["c", "other"]
    assert c.count() == len(PAYLOADS) and db.get_collection("other").count() == 1


# ---------------------------------------------------------------------------------------------
# paths: collection names
# ---------------------------------------------------------------------------------------------

BAD_NAMES = [
    "../x",
    "../../etc/passwd",
    "..",
    ".",
    "./x",
    "/abs",
    "a/b",
    "a\\b",
    "..\\x",
    "\\",
    "a\x00b",
    "\x00",
    "",
    " ",
    "a b",
    "a\nb",
    "a\tb",
    "\x01",
    "a\x7f",
    "x" * 129,
    "x" * 10_000,
    "é",
    "ä/../b",
    "a:b",
    "a*b",
    "-x",
    ".hidden",
    "a..b",
    "x\u2215y",  # a division slash, which looks like "/"
    "\ufeffx",
    5,
    None,
    b"x",
    Path("x"),
    ["x"],
]


def export_file(tmp_path: Path, collection: str) -> Path:
    """An export file (docs/format.md) whose header names ``collection``."""
    path = tmp_path / "import.jsonl"
    header = {
        "format": "vecstore-export",
        "version": 1,
        "collection": collection,
        "dim": 2,
        "metric": "cosine",
        "encoder": None,
        "index": {"kind": "flat"},
        "count": 1,
    }
    row = {"id": "a", "vector": [1.0, 2.0], "document": None, "metadata": {}}
    path.write_text(json.dumps(header) + "\n" + json.dumps(row) + "\n")
    return path


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_collection_names_are_refused_everywhere(tmp_path, name):
    store = tmp_path / "store"
    with vecstore.open(store) as db:
        db.create_collection("ok", dim=2)
        before = tree(tmp_path)
        calls = [
            lambda: db.create_collection(name, dim=2),
            lambda: db.get_or_create_collection(name, dim=2),
        ]
        if name is not None:  # None means "the name in the file"
            calls.append(lambda: db.import_collection(export_file(tmp_path, "ok"), name=name))
        for call in calls:
            with pytest.raises(vecstore.InvalidInput, match="collection names are 1-128"):
                call()
        if isinstance(name, str):  # named in an export file someone handed over
            with pytest.raises(vecstore.InvalidInput, match="collection names are 1-128"):
                db.import_collection(export_file(tmp_path, name))
        for call in (lambda: db.get_collection(name), lambda: db.delete_collection(name)):
            with pytest.raises(vecstore.CollectionNotFound):
                call()
        assert db.list_collections() == ["ok"]
        assert tree(tmp_path) - {"import.jsonl"} == before - {"import.jsonl"}


def test_longest_and_case_differing_names_stay_inside_the_store(tmp_path):
    store = tmp_path / "store"
    names = ["x" * 128, "Docs", "docs", "DOCS", "a.b-c_d", "_"]
    with vecstore.open(store) as db:
        for i, name in enumerate(names):
            db.create_collection(name, dim=2).add([name], vectors=[[1.0, float(i)]])
        assert db.list_collections() == sorted(names)
        for name in names:  # names differing in case are distinct collections
            assert db.get_collection(name).get().ids == [name]
        db.delete_collection("docs")
        assert db.get_collection("Docs").count() == 1
    dirs = [p for p in (store / "collections").iterdir()]
    assert len(dirs) == len(names) - 1
    assert all(p.parent == store / "collections" and p.is_dir() for p in dirs)
    assert {p.name for p in tmp_path.iterdir()} == {"store"}


# ---------------------------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def coll(tmp_path):
    with vecstore.open(tmp_path / "store", durability="normal") as db:
        c = db.create_collection("c", dim=4)
        c.add(["a", "b", "c"], vectors=np.eye(4)[:3], documents=["one", "two", "three"])
        yield c


def state(c) -> tuple:
    got = c.get(include_vectors=True)
    return got.ids, got.documents, got.metadata, got.vectors.tobytes(), c.count()


Q = np.ones(4, dtype=np.float32)
K, DIM, BATCH, QUERIES = inputs.MAX_K, inputs.MAX_DIM, inputs.MAX_BATCH, inputs.MAX_QUERIES
RESULTS, ID, KEY = inputs.MAX_RESULTS, inputs.MAX_ID_BYTES, inputs.MAX_KEY_CHARS


def nested(depth: int) -> dict:
    f: dict = {"k": 1}
    for _ in range(depth):
        f = {"$not": f}
    return f


def meta(n: int) -> dict:
    """Metadata packing to exactly ``n`` bytes (msgpack: a 1-key map of a str8/16/32)."""
    return {"a": "x" * (n - 1 - 2 - 5)}


# (name, a call at the limit or None where that is too slow to show, a call past it,
# the words of the message naming the limit). Calls take the collection and its database.
LIMITS = [
    ("k", lambda c, db: c.query(Q, k=K), lambda c, db: c.query(Q, k=K + 1), f"from 1 to {K}"),
    (
        "k of query_many",
        lambda c, db: c.query_many([Q], k=K),
        lambda c, db: c.query_many([Q], k=K + 1),
        f"from 1 to {K}",
    ),
    (
        "k of a text query",
        lambda c, db: c.query("one", mode="text", k=K),
        lambda c, db: c.query("one", mode="text", k=K + 1),
        f"from 1 to {K}",
    ),
    (
        "dim",
        lambda c, db: db.create_collection("wide", dim=DIM),
        lambda c, db: db.create_collection("wide", dim=DIM + 1),
        f"from 1 to {DIM}",
    ),
    (
        "ids per add",
        None,
        lambda c, db: c.add([str(i) for i in range(BATCH + 1)], vectors=np.zeros((1, 4))),
        f"at most {BATCH} ids",
    ),
    (
        "ids per upsert",
        None,
        lambda c, db: c.upsert([str(i) for i in range(BATCH + 1)], vectors=np.zeros((1, 4))),
        f"at most {BATCH} ids",
    ),
    (
        "ids per update",
        None,
        lambda c, db: c.update([str(i) for i in range(BATCH + 1)], metadata=[{}]),
        f"at most {BATCH} ids",
    ),
    (
        "ids per delete",
        None,
        lambda c, db: c.delete([str(i) for i in range(BATCH + 1)]),
        f"at most {BATCH} ids",
    ),
    (
        "ids per get",
        lambda c, db: c.get([str(i) for i in range(BATCH)]),
        lambda c, db: c.get([str(i) for i in range(BATCH + 1)]),
        f"at most {BATCH} ids",
    ),
    (
        "queries per query_many",
        None,
        lambda c, db: c.query_many(np.ones((QUERIES + 1, 4)), k=1),
        f"at most {QUERIES} queries",
    ),
    (
        "results per query_many",
        lambda c, db: c.query_many(np.ones((RESULTS // K, 4)), k=K),
        lambda c, db: c.query_many(np.ones((RESULTS // K + 1, 4)), k=K),
        f"the limit is {RESULTS}",
    ),
    (
        "keyword queries per query_many",
        None,
        lambda c, db: c.query_many(["one"] * (QUERIES + 1), mode="text", k=1),
        f"at most {QUERIES} queries",
    ),
    (
        "id bytes",
        lambda c, db: c.add(["x" * ID], vectors=[Q]),
        lambda c, db: c.add(["x" * (ID + 1)], vectors=[Q]),
        f"at most {ID} bytes",
    ),
    (
        "id bytes, multibyte",
        lambda c, db: c.add(["é" * (ID // 2)], vectors=[Q]),
        lambda c, db: c.add(["é" * (ID // 2 + 1)], vectors=[Q]),
        f"at most {ID} bytes",
    ),
    (
        "metadata key",
        lambda c, db: c.add(["m"], vectors=[Q], metadata=[{"k" * KEY: 1}]),
        lambda c, db: c.add(["m"], vectors=[Q], metadata=[{"k" * (KEY + 1): 1}]),
        f"at most {KEY} characters",
    ),
    (
        "metadata bytes",
        lambda c, db: c.add(["m"], vectors=[Q], metadata=[meta(MAX_META_BYTES)]),
        lambda c, db: c.add(["m"], vectors=[Q], metadata=[meta(MAX_META_BYTES + 1)]),
        f"the limit is {MAX_META_BYTES}",
    ),
    (
        "metadata nesting",
        lambda c, db: c.add(["m"], vectors=[Q], metadata=[{"a": [1, "x", None]}]),
        lambda c, db: c.add(["m"], vectors=[Q], metadata=[{"a": [[1]]}]),
        "or a list of those",
    ),
    (
        "document bytes",
        None,
        lambda c, db: c.add(["d"], vectors=[Q], documents=["x" * (inputs.MAX_DOCUMENT_BYTES + 1)]),
        f"larger than {inputs.MAX_DOCUMENT_BYTES >> 20} MiB",
    ),
    (
        "filter depth",
        lambda c, db: c.count(nested(filters.MAX_DEPTH)),
        lambda c, db: c.count(nested(filters.MAX_DEPTH + 1)),
        f"deeper than {filters.MAX_DEPTH} levels",
    ),
    (
        "$in values",
        lambda c, db: c.count({"k": {"$in": list(range(filters.MAX_IN_VALUES))}}),
        lambda c, db: c.count({"k": {"$in": list(range(filters.MAX_IN_VALUES + 1))}}),
        f"at most {filters.MAX_IN_VALUES} values",
    ),
    (
        "filter size",
        # compiled only: running 6,000 subqueries takes seconds
        lambda c, db: compile_filters(
            1, {"$or": [{"k": i} for i in range(filters.MAX_PARAMS // 5)]}
        ),
        lambda c, db: c.count({"$or": [{"k": i} for i in range(filters.MAX_PARAMS // 5 + 1)]}),
        f"the limit is {filters.MAX_PARAMS}",
    ),
]


@pytest.mark.parametrize("name, at_limit, past_limit, words", LIMITS, ids=[x[0] for x in LIMITS])
def test_limits(tmp_path, name, at_limit, past_limit, words):
    with vecstore.open(tmp_path / "store", durability="normal") as db:
        coll = db.create_collection("c", dim=4)
        coll.add(["a", "b", "c"], vectors=np.eye(4)[:3], documents=["one", "two", "three"])
        before = state(coll)
        with pytest.raises(vecstore.InvalidInput) as info:
            past_limit(coll, db)
        assert words in str(info.value), str(info.value)[:300]
        assert state(coll) == before
        if at_limit is not None:
            at_limit(coll, db)


def test_metadata_helper_packs_to_the_size_asked():
    import msgpack

    for n in (MAX_META_BYTES, MAX_META_BYTES + 1, 70_000):
        assert len(msgpack.packb(meta(n), use_bin_type=True)) == n


BAD_K = [0, -1, -(10**12), 10**18, 1.0, 2.5, True, False, "5", None, np.float32(3), [5]]


@pytest.mark.parametrize("k", BAD_K, ids=repr)
def test_bad_k_everywhere(coll, k):
    for call in (
        lambda: coll.query(Q, k=k),
        lambda: coll.query_many([Q, Q], k=k),
        lambda: coll.query("one", mode="text", k=k),
        lambda: coll.query_many(["one"], mode="text", k=k),
        lambda: coll.query(Q, k=k, mode="hybrid", text="one"),
    ):
        with pytest.raises(vecstore.InvalidInput, match=f"k must be an int from 1 to {K}"):
            call()


@pytest.mark.parametrize("dim", [0, -1, DIM + 1, 10**12, 4.0, True, "4"], ids=repr)
def test_bad_dim_names_the_limit(tmp_path, dim):
    with vecstore.open(tmp_path / "s") as db:
        with pytest.raises(vecstore.InvalidInput, match=f"from 1 to {DIM}"):
            db.create_collection("c", dim=dim)
        assert db.list_collections() == []


NON_FINITE = [np.nan, np.inf, -np.inf, 1e39]  # 1e39 overflows float32


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
def test_non_finite_vectors_are_refused_everywhere(coll, value):
    x = np.ones((2, 4))
    x[1, 2] = value
    before = state(coll)
    for call in (
        lambda: coll.add(["n", "m"], vectors=x),
        lambda: coll.upsert(["a", "m"], vectors=x),
        lambda: coll.update(["a", "b"], vectors=x),
        lambda: coll.query(x[1]),
        lambda: coll.query_many(x),
        lambda: coll.query(x[1], mode="hybrid", text="one"),
    ):
        with pytest.raises(vecstore.InvalidInput, match="finite"):
            call()
    assert state(coll) == before


BAD_ARRAYS = [
    ("complex", np.ones((2, 4), dtype=complex), "real numbers"),
    ("object", np.array([[1, 2, 3, {}]] * 2, dtype=object), "numeric"),
    ("strings", np.array([["1"] * 4] * 2), "numeric"),
    ("datetimes", np.array([["2020-01-01"] * 4] * 2, dtype="datetime64[D]"), "numeric"),
    ("durations", np.ones((2, 4), dtype="timedelta64[s]"), "numeric"),
    ("ragged", [[1.0, 2.0, 3.0, 4.0], [1.0]], "2-D array of numbers"),
    ("3-D", np.ones((2, 4, 1)), "must be 2-D"),
    ("wrong dim", np.ones((2, 5)), "has dim 4"),
    ("scalar", np.float32(1.0), "must be 2-D"),
]


@pytest.mark.parametrize("case, x, words", BAD_ARRAYS, ids=[b[0] for b in BAD_ARRAYS])
def test_wrong_dtype_and_shape_are_refused(coll, case, x, words):
    before = state(coll)
    for call in (
        lambda: coll.add(["n", "m"], vectors=x),
        lambda: coll.update(["a", "b"], vectors=x),
        lambda: coll.query_many(x),
    ):
        with pytest.raises(vecstore.InvalidInput, match=words):
            call()
    assert state(coll) == before
