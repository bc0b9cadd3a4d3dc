"""Index specifications: ``Flat``, ``IVF``, ``IVFPQ`` and ``HNSW``, frozen and stored as JSON.

A spec says what a collection's search index should be; ``None`` parameters are resolved
from the data when the index is trained (see ``resolve``), so one spec suits a collection
of any size. Imports nothing from vecstore but errors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..errors import InvalidInput

#: A collection with an IVF spec searches exactly until it holds this many rows.
DEFAULT_MIN_ROWS = 20_000
#: Points per centroid used to train the coarse quantizer (faiss warns below 39).
TRAIN_POINTS_PER_LIST = 48
#: Rows sampled to train the product quantizer (128 per sub-quantizer centroid).
PQ_TRAIN_ROWS = 32_768
#: Re-rank k x this many PQ candidates against the full vectors, unless told otherwise.
DEFAULT_REFINE = 10
#: The default nprobe is the smallest that reaches this recall@10 on held-out samples (or,
#: where quantization caps recall below it, comes within PLATEAU of the best reachable).
TARGET_RECALL = 0.95
PLATEAU = 0.01
#: An HNSW collection searches exactly until it holds this many rows (a graph needs no
#: training, so it starts earlier than IVF's lists).
HNSW_MIN_ROWS = 5_000
#: The HNSW beam width per query unless told otherwise: recall@10 about 0.97-0.98 on 115k
#: MiniLM vectors with M=16 (hnswlib reaches 0.973 at ef=40 on the same graph parameters).
DEFAULT_EF_SEARCH = 48
#: At this dimension and below, ``IVFPQ()`` without an explicit ``m`` stores flat float32
#: lists (IVF-Flat): sub-vectors of 2 dimensions barely compress (a 50-d row is 200 bytes
#: flat, 25 as codes, but then needs re-ranking from the float32 rows anyway), so scanning
#: the rows themselves is as fast, exact within the probed lists, and needs no PQ training.
FLAT_LISTS_MAX_DIM = 64


def _check_int(name: str, value, lo: int, hi: int | None = None) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < lo
        or (hi is not None and value > hi)
    ):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise InvalidInput(f"{name} must be an int {bound} or None; got {value!r}")


@dataclass(frozen=True)
class Flat:
    """Exact search: every query scans every live vector. Recall is 1 by construction."""

    kind = "flat"

    def to_json(self) -> dict:
        return {"kind": self.kind}


@dataclass(frozen=True)
class IVF:
    """Inverted file over a k-means coarse quantizer, scanning full float32 vectors.

    Parameters
    ----------
    nlist : int, optional
        Number of lists (k-means centroids), *nlist* in the literature. Default:
        ``4 * sqrt(N)`` rounded to a power of two, for the N rows at training time.
    nprobe : int, optional
        Lists scanned per query, *nprobe*. Default: the smallest that reaches recall@10 of
        0.95 against exact search on rows sampled at training time.
    min_rows : int, optional
        Search exactly (and train nothing) until the collection holds this many rows.
        Default 20,000.
    """

    nlist: int | None = None
    nprobe: int | None = None
    min_rows: int | None = None
    kind = "ivf"

    def __post_init__(self) -> None:
        _check_int("nlist", self.nlist, 1, 1 << 20)
        _check_int("nprobe", self.nprobe, 1)
        _check_int("min_rows", self.min_rows, 1)

    def to_json(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class IVFPQ:
    """IVF with residual product quantization: ``m`` one-byte codes per vector are scanned,
    and the best ``k * refine`` candidates are re-ranked against the full vectors.

    Parameters
    ----------
    nlist, nprobe, min_rows :
        As for ``IVF``.
    m : int, optional
        Sub-quantizers, *M* (bytes per vector); must divide the dimension. Default: the
        divisor of dim nearest dim / 8 from 256-d up (48 for 384), dim / 4 above 64-d; at
        64-d and below (``FLAT_LISTS_MAX_DIM``) no PQ: the lists hold the float32 rows, as
        ``IVF`` (pass ``m`` to quantize anyway), scored exactly, so ``refine`` has no effect.
    nbits : int
        Bits per sub-quantizer code, 1 to 8 (*ksub* = 2**nbits centroids each). Default 8.
    refine : int, optional
        Re-rank factor: ``k * refine`` candidates are scored exactly. Default 10; 1 turns
        re-ranking off (scores are then PQ estimates).
    """

    nlist: int | None = None
    m: int | None = None
    nbits: int = 8
    nprobe: int | None = None
    refine: int | None = None
    min_rows: int | None = None
    kind = "ivfpq"

    def __post_init__(self) -> None:
        _check_int("nlist", self.nlist, 1, 1 << 20)
        _check_int("m", self.m, 1, 4096)
        if self.nbits is None:
            raise InvalidInput("nbits must be an int between 1 and 8; got None")
        _check_int("nbits", self.nbits, 1, 8)
        _check_int("nprobe", self.nprobe, 1)
        _check_int("refine", self.refine, 1, 1000)
        _check_int("min_rows", self.min_rows, 1)

    def to_json(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class HNSW:
    """A hierarchical navigable small-world graph per segment (Malkov & Yashunin), built when
    a segment is sealed or merged, searched by a beam of width ``ef_search``.

    Parameters
    ----------
    M : int
        Links per node on the upper layers, *M* (2M on layer 0). Default 16.
    ef_construction : int
        Beam width while linking a node, *efConstruction*. Default 200.
    ef_search : int, optional
        Beam width per query, *ef* (at least k is used). Default 48; ``query(ef=...)``
        overrides it per query.
    min_rows : int, optional
        Search exactly (and build nothing) until the collection holds this many rows.
        Default 5,000.
    """

    M: int = 16
    ef_construction: int = 200
    ef_search: int | None = None
    min_rows: int | None = None
    kind = "hnsw"

    def __post_init__(self) -> None:
        if self.M is None or self.ef_construction is None:
            raise InvalidInput("M and ef_construction must be ints, not None")
        _check_int("M", self.M, 2, 128)
        _check_int("ef_construction", self.ef_construction, 1, 4096)
        _check_int("ef_search", self.ef_search, 1, 65536)
        _check_int("min_rows", self.min_rows, 1)

    def to_json(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


Spec = Flat | IVF | IVFPQ | HNSW
_KINDS = {cls.kind: cls for cls in (Flat, IVF, IVFPQ, HNSW)}


def from_json(data: dict | None) -> Spec:
    """The spec stored in a collection's config (absent: ``Flat()``)."""
    if not data:
        return Flat()
    cls = _KINDS.get(data.get("kind"))
    if cls is None:
        raise InvalidInput(f"unknown index kind {data.get('kind')!r}")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def index_spec(data: dict) -> Spec:
    """A spec from its JSON form, e.g. ``{"kind": "ivfpq", "nlist": 1024}``; unknown keys
    raise ``InvalidInput``."""
    cls = _KINDS.get(data.get("kind")) if isinstance(data, dict) else None
    if cls is None:
        raise InvalidInput(f"index kind must be one of {sorted(_KINDS)}; got {data!r}")
    names = {f.name for f in fields(cls)}
    extra = sorted(set(data) - names - {"kind"})
    if extra:
        raise InvalidInput(
            f"{cls.__name__} has no parameter {extra[0]!r}; it takes {sorted(names)}"
        )
    return cls(**{k: v for k, v in data.items() if k != "kind"})


def check(spec, dim: int) -> Spec:
    """Validate a user's spec against the collection's dimension."""
    if not isinstance(spec, (Flat, IVF, IVFPQ, HNSW)):
        raise InvalidInput(
            "index must be vecstore.Flat(), IVF(...), IVFPQ(...) or HNSW(...); "
            f"got {type(spec).__name__}"
        )
    if isinstance(spec, IVFPQ) and spec.m is not None and dim % spec.m:
        raise InvalidInput(f"IVFPQ m={spec.m} must divide the collection's dim {dim}")
    return spec


def min_rows(spec: Spec) -> int | None:
    """Rows at which the index is trained (None for Flat)."""
    if isinstance(spec, Flat):
        return None
    if isinstance(spec, HNSW):
        return spec.min_rows if spec.min_rows is not None else HNSW_MIN_ROWS
    floor = spec.min_rows if spec.min_rows is not None else DEFAULT_MIN_ROWS
    if spec.nlist is not None:
        floor = max(floor, 8 * spec.nlist)  # k-means needs several points per list
    if isinstance(spec, IVFPQ):
        floor = max(floor, 4 << spec.nbits)  # ... and each sub-quantizer per centroid
    return floor


def flat_lists(spec: Spec, dim: int) -> bool:
    """Whether an IVF or IVF-PQ spec stores flat float32 lists at this dimension: always for
    ``IVF``; for ``IVFPQ`` when ``m`` is left to the default and dim <= FLAT_LISTS_MAX_DIM."""
    if isinstance(spec, IVF):
        return True
    return isinstance(spec, IVFPQ) and spec.m is None and dim <= FLAT_LISTS_MAX_DIM


def default_nlist(n: int) -> int:
    """``4 sqrt(N)`` rounded to a power of two, at least 16, and at most N / 8."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = 1 << max(4, round(math.log2(target)))
    return max(1, min(nlist, n // 8))


def default_m(dim: int) -> int:
    """The divisor of dim nearest dim / dsub, with sub-vectors of dsub = 8 dimensions from
    256-d up, 4 from 64-d and 2 below (fewer dimensions leave less room to quantize)."""
    dsub = 8 if dim >= 256 else 4 if dim >= 64 else 2
    divisors = [m for m in range(1, dim + 1) if dim % m == 0]
    return min(divisors, key=lambda m: (abs(m - dim / dsub), -m))
