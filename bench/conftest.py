"""Shared setup for the pytest-benchmark files in bench/ (never part of the test suite).

Puts the repository root first on sys.path, so the benchmarks measure the working tree's
vecstore whatever the state of the installed package, and provides seeded, clustered,
unit-length synthetic vectors for the store benchmarks. Sizes can be shrunk for a quick
check with VECSTORE_BENCH_N and VECSTORE_BENCH_DIM (defaults 100000 and 384).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from benchdata import CATEGORIES, make_metadata  # noqa: F401 (fixtures and suites use both)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BENCH_N = int(os.environ.get("VECSTORE_BENCH_N", "100000"))
BENCH_DIM = int(os.environ.get("VECSTORE_BENCH_DIM", "384"))


def unit_clustered(n: int, dim: int, *, seed: int, stream: int, clusters: int = 256) -> np.ndarray:
    """``n`` unit vectors around ``clusters`` centres shared by every ``stream`` of one
    ``seed`` (a stand-in for embeddings): data and queries are two streams."""
    rc = np.random.default_rng([seed, 0])
    centres = rc.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rc.uniform(0.6, 1.4, size=clusters).astype(np.float32) / np.sqrt(dim)
    r = np.random.default_rng([seed, 1, stream])
    lab = r.integers(0, clusters, size=n)
    x = centres[lab] + spread[lab, None] * r.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


@pytest.fixture(scope="session")
def store_vectors() -> np.ndarray:
    return unit_clustered(BENCH_N, BENCH_DIM, seed=0, stream=0)


@pytest.fixture(scope="session")
def store_queries() -> np.ndarray:
    return unit_clustered(1000, BENCH_DIM, seed=0, stream=1)


@pytest.fixture(scope="session")
def store_ids() -> list[str]:
    return [f"id{i}" for i in range(BENCH_N)]


@pytest.fixture(scope="session")
def store_metadata() -> tuple[list[dict], list[str]]:
    return make_metadata(BENCH_N)


@pytest.fixture(scope="session")
def bench_tmp():
    """A scratch directory for benchmark stores, removed at the end of the session."""
    path = Path(tempfile.mkdtemp(prefix="vecstore-bench-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
