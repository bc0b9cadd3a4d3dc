"""The compiler's pages leave the process once the kernels are loaded; queries are unchanged."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = r"""
import sys, numpy as np, vecstore
def llvm_kb():
    total, cur = 0, False
    for line in open("/proc/self/smaps"):
        f = line.split()
        if not f[0].endswith(":"):
            cur = len(f) > 5 and "libllvmlite" in f[5]
        elif cur and f[0] == "Rss:":
            total += int(f[1])
    return total
x = np.random.default_rng(0).standard_normal((1100, 32)).astype(np.float32)
with vecstore.open(sys.argv[1], progress=False) as db:
    c = db.create_collection("c", dim=32, index=vecstore.IVFPQ(nlist=8, m=4, min_rows=1024))
    c.add([str(i) for i in range(1100)], vectors=x)  # trains: LLVM loads the kernels
    trained = llvm_kb()
    first = [c.query(q, k=3).ids for q in x[:5]]
    queried = llvm_kb()
    again = [c.query(q, k=3).ids for q in x[:5]]
    batch = [r.ids for r in c.query_many(x[:5], k=3)]
    print(trained, queried, first == again == batch, [ids[0] for ids in first])
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/smaps")
def test_compiler_pages_leave_after_the_kernels_load(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    trained, queried, same, tops = out.split(maxsplit=3)
    assert int(trained) > 10_000  # KiB: training ran LLVM
    assert int(queried) < int(trained) / 4
    assert same == "True"
    assert tops.strip() == "['0', '1', '2', '3', '4']"
