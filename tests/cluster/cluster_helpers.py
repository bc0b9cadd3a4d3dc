"""The Dask tests' cluster fixture, and encoders pickled by value to the workers.

Not a conftest.py: a second module named ``conftest`` would shadow tests/conftest.py for
the test files that import from it.
"""

from __future__ import annotations

import os
import time
import zlib
from contextlib import contextmanager

import numpy as np

from vecstore.encoders import named


@named("dask_hashing_encoder", version="1")
def hashing_encoder(texts: list[str], dim: int = 16) -> np.ndarray:
    """Deterministic: each word adds a fixed random direction."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            seed = zlib.crc32(word.encode())
            out[i] += np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return out


class SlowOnce:
    """The hashing encoder, which on the partition holding ``trigger`` writes its process
    id to ``marker`` and sleeps, the first time only: a test kills that process meanwhile."""

    def __init__(self, trigger: str, marker: str, pause: float):
        self.trigger = trigger
        self.marker = marker
        self.pause = pause

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.trigger in texts and not os.path.exists(self.marker):
            with open(self.marker + ".tmp", "w") as fh:
                fh.write(str(os.getpid()))
            os.rename(self.marker + ".tmp", self.marker)
            time.sleep(self.pause)
        return hashing_encoder(texts)


@contextmanager
def local_cluster():
    """A LocalCluster of two worker processes, one thread each, and its client."""
    import sys

    import cloudpickle
    import distributed

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as c:
        yield c
