"""Real processes sharing one store: a writer and readers, and two writers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

import vecstore

WRITER = textwrap.dedent(
    """
    import sys, numpy as np, vecstore
    path, name, batches, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    with vecstore.open(path, seal_rows=32, lock_timeout=60) as db:
        c = db.get_collection("c")
        for b in range(batches):
            ids = [f"{name}-{b}-{i}" for i in range(size)]
            x = rng.standard_normal((size, 8)).astype("float32")
            # every row of a batch carries the batch number: readers check batches are whole
            c.add(ids, vectors=x, metadata=[{"writer": name, "batch": b}] * size)
            if b % 7 == 3:
                c.delete(where={"$and": [{"writer": name}, {"batch": b - 1}]})
        if name == "w0":
            c.compact()
    print("done")
    """
)

READER = textwrap.dedent(
    """
    import sys, json, numpy as np, vecstore
    path, rounds, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    q = np.ones(8, dtype="float32")
    seen, bad = 0, []
    with vecstore.open(path, read_only=True) as db:
        c = db.get_collection("c")
        for r in range(rounds):
            got = c.get()
            groups = {}
            for m in got.metadata:
                key = (m["writer"], m["batch"])
                groups[key] = groups.get(key, 0) + 1
            torn = {str(k): v for k, v in groups.items() if v != size}
            if torn:
                bad.append(torn)
            res = c.query(q, k=5, where={"writer": "w0"})
            if any(m["writer"] != "w0" for m in res.metadata):
                bad.append("filter leak")
            seen = max(seen, len(got))
    print(json.dumps({"max_seen": seen, "bad": bad[:5]}))
    """
)


def test_two_writers_two_readers(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        db.create_collection("c", dim=8)
    batches, size = 30, 5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"w{i}", str(batches), str(size)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(path), "40", str(size)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.strip() == "done"
    for p in readers:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        report = json.loads(out)
        assert report["bad"] == [], report
    deleted = len([b for b in range(batches) if b % 7 == 3])
    with vecstore.open(path, read_only=True) as db:
        c = db.get_collection("c")
        assert c.count() == 2 * (batches - deleted) * size
        for w in ("w0", "w1"):
            assert c.count({"writer": w}) == (batches - deleted) * size
        x = c.get(["w1-0-0"], include_vectors=True).vectors
        assert c.query(x[0], k=1).ids == ["w1-0-0"]


def test_reader_sees_new_commits_on_next_query(tmp_path):
    path = tmp_path / "s"
    with vecstore.open(path) as db:
        db.create_collection("c", dim=2)
    with vecstore.open(path, read_only=True) as reader:
        rc = reader.get_collection("c")
        assert rc.count() == 0
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, vecstore\n"
                "with vecstore.open(sys.argv[1]) as db:\n"
                "    db.get_collection('c').add(['a'], vectors=[[1.0, 2.0]])\n",
                str(path),
            ],
            check=True,
            timeout=120,
        )
        assert rc.count() == 1
        assert rc.query(np.array([1.0, 2.0]), k=1).ids == ["a"]
