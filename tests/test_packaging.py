"""The package anyone can install: ``python -m build`` makes a wheel and an sdist; the wheel,
installed (not editable) into a fresh venv, imports, carries py.typed, and runs a smoke
script; and ``mypy --strict`` runs clean on a user script over the public API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SMOKE = """
import sys, tempfile
import numpy as np
import vecstore
assert vecstore.__file__.startswith(sys.prefix), vecstore.__file__  # the installed copy
from importlib import resources, metadata
assert resources.files("vecstore").joinpath("py.typed").is_file()
assert metadata.version("vecstore-db") == vecstore.__version__
with vecstore.open(tempfile.mkdtemp()) as db:
    c = db.create_collection("c", dim=4)
    c.add(["a", "b"], vectors=np.eye(4, dtype=np.float32)[:2], metadata=[{"k": 1}, {"k": 2}])
    assert c.query(np.eye(4)[1], k=1, where={"k": 2}).ids == ["b"]
print("smoke ok")
"""


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_works(tmp_path):
    pytest.importorskip("build")
    # build from a copy: setuptools leaves egg-info and build/ beside the sources
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "*.egg-info", "build", "dist", "__pycache__", ".venv", ".*_cache", "results"
        ),
    )
    dist = tmp_path / "dist"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = dist.glob("vecstore_db-*.whl")
    assert len(list(dist.glob("vecstore_db-*.tar.gz"))) == 1
    names = zipfile.ZipFile(wheel).namelist()
    assert "vecstore/py.typed" in names and "vecstore/integrations/langchain.py" in names
    venv = tmp_path / "venv"
    # the venv sees this interpreter's packages (numpy, numba...), so nothing is downloaded;
    # --no-deps installs just the wheel
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=300)  # fmt: skip
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=300, env=env)  # fmt: skip
    run = subprocess.run([str(python), "-c", SMOKE], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=300, check=False)  # fmt: skip
    assert run.returncode == 0 and "smoke ok" in run.stdout, run.stderr[-3000:]
    cli = subprocess.run([str(venv / "bin" / "vecstore"), "--help"], capture_output=True,
                         text=True, env=env, timeout=300, check=False)  # fmt: skip
    assert cli.returncode == 0 and "import" in cli.stdout


USER_SCRIPT = """
from __future__ import annotations

import numpy as np
import vecstore
from vecstore import GetResult, QueryResult


def main(path: str) -> list[str]:
    with vecstore.open(path, durability="normal") as db:
        docs = db.get_or_create_collection("docs", dim=4, metric="cosine")
        docs.upsert(["a", "b"], vectors=np.eye(4, dtype=np.float32)[:2],
                    metadata=[{"lang": "en"}, {"lang": "de"}])
        hits: QueryResult = docs.query(np.ones(4), k=2, where={"lang": "en"}, mode="vector")
        rows: GetResult = docs.get(["a"], include_vectors=True)
        docs.create_index(vecstore.IVF(nlist=4))
        fused = docs.query(np.ones(4), text="x", k=1, mode="hybrid", fusion="rrf")
        return hits.ids + rows.ids + fused.ids
"""


@pytest.mark.slow
def test_mypy_strict_is_clean_on_a_user_script(tmp_path):
    api = pytest.importorskip("mypy.api")
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent(USER_SCRIPT))
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), str(script)]
    )  # fmt: skip
    assert status == 0, out + err
    script.write_text(USER_SCRIPT.replace('metric="cosine"', 'metric="hamming"'))
    out, _, status = api.run(["--strict", "--follow-imports=silent",
                              "--cache-dir", str(tmp_path / "cache"), str(script)])  # fmt: skip
    assert status == 1 and "hamming" in out, out


def test_upkeep_logs_under_the_vecstore_logger_and_queries_do_not(tmp_path, caplog):
    import logging

    import numpy as np

    import vecstore

    caplog.set_level(logging.INFO, logger="vecstore")
    rng = np.random.default_rng(0)
    with vecstore.open(tmp_path / "s", seal_rows=64, progress=False) as db:
        c = db.create_collection("c", dim=8, index=vecstore.IVF(nlist=4, min_rows=256))
        for i in range(8):
            c.add([f"{i}-{j}" for j in range(40)], vectors=rng.standard_normal((40, 8)))
        c.delete([f"0-{j}" for j in range(40)])
        c.compact()
        messages = [r.getMessage() for r in caplog.records if r.name.startswith("vecstore")]
        assert any(m.startswith("sealed") for m in messages), messages
        assert any(m.startswith("trained the ivf index") for m in messages), messages
        assert any(m.startswith("compacted 'c'") and " s" in m for m in messages), messages
        caplog.clear()
        c.query(rng.standard_normal(8), k=3)
        c.query_many(rng.standard_normal((4, 8)), k=3)
        assert not [r for r in caplog.records if r.name.startswith("vecstore")]
