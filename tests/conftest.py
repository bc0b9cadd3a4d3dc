"""Shared fixtures: a seeded rng, clustered synthetic vectors, a store in a temp directory."""

from __future__ import annotations

import os
import zlib

# The first exact queries of a process take BLAS until the Numba kernels have loaded in the
# background (index/cold.py), which ranks alike but may round a score's last bit otherwise:
# the suite runs every query through the kernels (here and in the processes it starts), so
# tests comparing scores exactly do not depend on when the load finishes. tests/index/
# test_cold.py tests the BLAS path itself, and sets VECSTORE_COLD_START=1 where it needs it.
os.environ.setdefault("VECSTORE_COLD_START", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vecstore  # noqa: E402
from vecstore.encoders import named  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--long",
        action="store_true",
        help="run the reliability tests at their long sizes (1,000 kill cycles, 60 s of "
        "concurrent processes, ...) instead of the fast defaults",
    )


@pytest.fixture(scope="session")
def long_run(request) -> bool:
    """True under ``pytest --long``: reliability tests use their long sizes."""
    return bool(request.config.getoption("--long"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261123)


def clustered(n: int, dim: int, *, clusters: int = 16, seed: int = 0) -> np.ndarray:
    """``n`` float32 vectors around ``clusters`` random centres (a stand-in for embeddings)."""
    r = np.random.default_rng(seed)
    centres = r.standard_normal((clusters, dim)).astype(np.float32)
    labels = r.integers(0, clusters, n)
    return (centres[labels] + 0.3 * r.standard_normal((n, dim))).astype(np.float32)


@named("hashing_encoder", version="1")
def hashing_encoder(texts: list[str], dim: int = 16) -> np.ndarray:
    """A deterministic stand-in for a model: each word adds a fixed random direction."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            seed = zlib.crc32(word.encode())
            out[i] += np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return out


def typed(v):
    """A comparable form that tells True from 1, 1 from 1.0 and -0.0 from 0.0 (== does not)."""
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    return (type(v).__name__, repr(v))


@pytest.fixture
def data() -> np.ndarray:
    return clustered(2_000, 32)


@pytest.fixture
def db(tmp_path):
    with vecstore.open(tmp_path / "store", seal_rows=64) as database:
        yield database
