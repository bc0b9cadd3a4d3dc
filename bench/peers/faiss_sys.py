"""faiss (a library, not a store): IndexFlatIP, IndexIVFFlat, IndexIVFPQ wrapped in
IndexRefineFlat, and IndexScalarQuantizer (QT_8bit) wrapped in IndexRefineFlat, written
with write_index (+ fsync) and read back with read_index.

faiss keeps no metadata, so the two filter fields are saved beside the index as .npy and a
filter becomes an IDSelectorBatch of the matching rows, built once per (field, value) and
cached: the most favourable way to use faiss with a filter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Adapter, fsync_tree, nlist_for, pq_m

NPROBES = (2, 4, 8, 16, 32, 64, 128)
REFINE = 10


class FaissFlat(Adapter):
    kind = "exact"
    library = "faiss-cpu"
    modules = ("faiss",)
    notes = "IndexFlatIP on unit vectors"

    @classmethod
    def version(cls) -> str:
        import faiss

        return faiss.__version__

    def _new_index(self):
        import faiss

        return faiss.IndexFlatIP(self.d)

    def create(self, path: Path) -> None:
        import faiss

        faiss.omp_set_num_threads(self.threads)
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.parts, self.fields = [], {"c100": [], "c10": []}

    def add(self, start: int, x: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        self.parts.append(x)
        for name in self.fields:
            self.fields[name].append(fields[name])

    def finish(self) -> None:
        import faiss

        xb = np.concatenate(self.parts)
        self.parts = []
        index = self._new_index()
        self._train(index, xb)
        index.add(xb)
        faiss.write_index(index, str(self.path / "index.faiss"))
        for name, parts in self.fields.items():
            np.save(self.path / f"{name}.npy", np.concatenate(parts), allow_pickle=False)
        fsync_tree(self.path)

    def _train(self, index, xb: np.ndarray) -> None:
        pass

    def open(self, path: Path) -> None:
        import faiss

        faiss.omp_set_num_threads(self.threads)
        self.index = faiss.read_index(str(path / "index.faiss"))
        self.columns = {n: np.load(path / f"{n}.npy") for n in ("c100", "c10")}
        self.selectors: dict = {}
        self.knob = self.default_knob()

    def _params(self, sel=None):
        import faiss

        return None if sel is None else faiss.SearchParameters(sel=sel)

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        I = self.index.search(q[None, :], k, params=self._params())[1][0]
        return I[I >= 0]

    def search_batch(self, xq: np.ndarray, k: int) -> list[np.ndarray]:
        I = self.index.search(xq, k, params=self._params())[1]
        return [row[row >= 0] for row in I]

    def search_filtered(self, q: np.ndarray, k: int, field: str, value: int) -> np.ndarray:
        import faiss

        key = (field, value)
        if key not in self.selectors:
            rows = np.flatnonzero(self.columns[field] == value).astype(np.int64)
            self.selectors[key] = (faiss.IDSelectorBatch(rows), rows)  # keep rows alive
        I = self.index.search(q[None, :], k, params=self._params(self.selectors[key][0]))[1][0]
        return I[I >= 0]

    def set_knob(self, value) -> None:
        self.knob = value

    def thread_options(self) -> tuple:
        # with 2 OpenMP threads on a busy 2-core machine a single query can wait for a core
        # the other thread cannot get (measured here: IndexRefineFlat 100 q/s at 2 threads,
        # 20,000 at 1), so single queries are timed at both and the faster kept
        return tuple(sorted({self.threads, 1}, reverse=True))

    def set_threads(self, n: int) -> None:
        import faiss

        faiss.omp_set_num_threads(n)


class FaissIVFFlat(FaissFlat):
    kind = "ann"
    knob_name = "nprobe"
    notes = "IndexIVFFlat, nlist as vecstore's, k-means on 48 rows per list"

    def knobs(self) -> tuple:
        return NPROBES

    def _new_index(self):
        import faiss

        self.nlist = nlist_for(self.n)
        return faiss.IndexIVFFlat(
            faiss.IndexFlatIP(self.d), self.d, self.nlist, faiss.METRIC_INNER_PRODUCT
        )

    def _train(self, index, xb: np.ndarray) -> None:
        rows = min(len(xb), max(48 * self.nlist, 32_768))
        sample = xb[np.random.default_rng(0).permutation(len(xb))[:rows]]
        index.train(sample)

    def _ivf_params(self, sel=None):
        import faiss

        p = faiss.SearchParametersIVF(nprobe=int(self.knob or 1))
        if sel is not None:
            p.sel = sel
        self._keep_ivf = p  # SWIG parameter objects hold raw pointers: keep them alive
        return p

    def _params(self, sel=None):
        return self._ivf_params(sel)


class FaissIVFPQRefine(FaissIVFFlat):
    notes = (
        "IndexIVFPQ (nlist and m as vecstore's, 8-bit codes) + IndexRefineFlat re-ranking "
        "k x 10 candidates"
    )

    def _new_index(self):
        import faiss

        self.nlist = nlist_for(self.n)
        ivf = faiss.IndexIVFPQ(
            faiss.IndexFlatIP(self.d), self.d, self.nlist, pq_m(self.d), 8,
            faiss.METRIC_INNER_PRODUCT,
        )  # fmt: skip
        self._ivf = ivf  # IndexRefineFlat does not own its base index from Python
        return faiss.IndexRefineFlat(ivf)

    def _params(self, sel=None):
        import faiss

        p = faiss.IndexRefineSearchParameters(
            k_factor=REFINE, base_index_params=self._ivf_params(sel)
        )
        self._keep_refine = p
        return p


class FaissSQ8Refine(FaissFlat):
    kind = "ann"
    knob_name = "k_factor"
    notes = (
        "IndexScalarQuantizer(QT_8bit) scanned exhaustively + IndexRefineFlat re-ranking "
        "k x k_factor candidates (the counterpart of vecstore-int8)"
    )

    def knobs(self) -> tuple:
        return (1, 2, 4)

    def _new_index(self):
        import faiss

        sq = faiss.IndexScalarQuantizer(
            self.d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        self._sq = sq  # IndexRefineFlat does not own its base index from Python
        return faiss.IndexRefineFlat(sq)

    def _train(self, index, xb: np.ndarray) -> None:
        index.train(xb)

    def _params(self, sel=None):
        import faiss

        base = None if sel is None else faiss.SearchParameters(sel=sel)
        p = faiss.IndexRefineSearchParameters(k_factor=float(self.knob or 1))
        if base is not None:
            p.base_index_params = base
        self._keep = (p, base)
        return p
