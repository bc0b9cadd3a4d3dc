"""An encoder from a static word-vector table: GloVe text, a ``.npy`` array with a vocabulary,
or word2vec files through gensim.

A text that is one word of the table (after lowercasing) is that word's row; any other text
is the mean of the rows of its words. Unknown words are skipped, and a text with no known
word is the zero vector (or, with ``unknown="error"``, raises). The spec records the table's
path and a SHA-256 of its content, so a changed table is refused on reopen. numpy only;
gensim and pyarrow are imported when a file needs them. Imports nothing from vecstore but
``errors``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import EncoderMismatch, InvalidInput, MissingDependency
from .base import EncoderSpec, Kind, as_matrix

UNKNOWN = ("skip", "error")
# Words as GloVe and word2vec tokenise them: letters and digits, joined by ' - . inside
# ("don't", "e-mail", "u.s"), or any single other non-space character (punctuation).
_TOKEN = re.compile(r"\w+(?:['.\-]\w+)*|[^\w\s]")
# spec.model is the table's path, plus "#vocab=<path>" for a .npy table, "#cased" when the
# text is not lowercased and "#word2vec" for a word2vec file.
_SPEC_TAGS = re.compile(r"#(vocab=.*|cased|word2vec)$", re.DOTALL)


def file_hash(*paths: Path) -> str:
    """SHA-256 of the files' content, in order (the table, then its vocabulary)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def read_vocab(path: Path) -> list[str]:
    """One word per line of a text file, or the first column of a Parquet file."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise MissingDependency(
                "a .parquet vocabulary needs pyarrow: pip install pyarrow"
            ) from None
        return [str(w) for w in pq.read_table(path).column(0).to_pylist()]
    lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: words may hold \x85
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_glove(path: Path) -> tuple[list[str], np.ndarray]:
    """``(words, table)`` of a GloVe text file: ``word v1 v2 ... vd`` per line."""
    words, rows = [], []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if len(parts) < 2:
                continue
            if rows and len(parts) - 1 != len(rows[0]):
                raise InvalidInput(
                    f"{path}:{number}: {len(parts) - 1} values; the first line had {len(rows[0])}"
                )
            words.append(parts[0])
            rows.append(parts[1:])
    if not rows:
        raise InvalidInput(f"{path} holds no word vectors")
    try:
        return words, np.array(rows, dtype=np.float32)
    except ValueError as exc:
        raise InvalidInput(f"{path}: a value is not a number ({exc})") from None


def read_word2vec(path: Path) -> tuple[list[str], np.ndarray]:
    """``(words, table)`` of a word2vec file (binary ``.bin``, else text), through gensim."""
    try:
        from gensim.models import KeyedVectors
    except ImportError:
        raise MissingDependency("word2vec files need gensim: pip install gensim") from None
    kv = KeyedVectors.load_word2vec_format(str(path), binary=path.suffix == ".bin")
    return list(kv.index_to_key), np.asarray(kv.vectors, dtype=np.float32)


class WordVectorEncoder:
    """Embed words and short texts with a static word-vector table (GloVe, word2vec).

    Parameters
    ----------
    table : str or path
        A GloVe text file (``.txt``: ``word v1 ... vd`` per line), a ``.npy`` array
        ``(n_words, d)`` with ``vocab``, or a word2vec file (``word2vec=True``: binary if it
        ends in ``.bin``, else text; needs gensim).
    vocab : str or path, optional
        For a ``.npy`` table: its words, one per line of a text file, or the first column of
        a ``.parquet`` file, in row order.
    word2vec : bool
        Read ``table`` as word2vec through gensim's ``KeyedVectors``.
    unknown : {"skip", "error"}
        Words not in the table are skipped (a text with no known word embeds as the zero
        vector, which scores 0 against everything under cosine), or raise ``InvalidInput``.
    lowercase : bool
        Lowercase texts before looking words up (GloVe 6B and most tables are lowercase).
    normalize : bool
        L2-normalise each embedding (off by default: a word embeds as its exact row).
    expected : EncoderSpec, optional
        A stored spec the table must reproduce (its content hash is checked on load).

    Notes
    -----
    A text is first looked up whole (``"new_york"``, ``","``); otherwise it is cut into
    words (letters and digits joined by ``'``, ``-`` or ``.``, and single punctuation
    characters) and embedded as the mean of its known words' rows.
    """

    def __init__(
        self,
        table: str | Path,
        *,
        vocab: str | Path | None = None,
        word2vec: bool = False,
        unknown: str = "skip",
        lowercase: bool = True,
        normalize: bool = False,
        expected: EncoderSpec | None = None,
    ):
        self.table = Path(table).expanduser().resolve()
        self.vocab = Path(vocab).expanduser().resolve() if vocab is not None else None
        if unknown not in UNKNOWN:
            raise InvalidInput(f"unknown must be one of {UNKNOWN}; got {unknown!r}")
        if not self.table.is_file():
            raise InvalidInput(f"word-vector table {self.table} is not a file")
        is_npy = self.table.suffix == ".npy"
        if is_npy and (self.vocab is None or not self.vocab.is_file()):
            raise InvalidInput(f"a .npy table needs vocab=, a file of its words; got {vocab!r}")
        if not is_npy and vocab is not None:
            raise InvalidInput("vocab= is for .npy tables; text tables name their words")
        self.word2vec = bool(word2vec)
        self.unknown = unknown
        self.lowercase = bool(lowercase)
        self.normalize = bool(normalize)
        self._expected = expected
        self._rows: dict[str, int] | None = None
        self._vectors: np.ndarray | None = None
        self._revision: str | None = None
        self._lock = threading.Lock()
        self.dim = expected.dim if expected is not None else self._load().shape[1]

    @property
    def name(self) -> str:
        tags = f"#vocab={self.vocab}" if self.vocab is not None else ""
        tags += "#word2vec" if self.word2vec else ""
        return f"{self.table}{tags}" + ("" if self.lowercase else "#cased")

    @classmethod
    def from_spec(cls, spec: EncoderSpec) -> WordVectorEncoder:
        """Rebuild from a stored spec; the table is checked against its hash on first use."""
        if spec.kind != "word-vectors":
            raise InvalidInput(f"not a word-vector encoder spec (kind {spec.kind!r})")
        model, options = spec.model, {"lowercase": True, "word2vec": False, "vocab": None}
        while (m := _SPEC_TAGS.search(model)) is not None:
            tag, model = m.group(1), model[: m.start()]
            if tag == "cased":
                options["lowercase"] = False
            elif tag == "word2vec":
                options["word2vec"] = True
            else:
                options["vocab"] = tag[len("vocab=") :]
        return cls(model, normalize=spec.normalize, expected=spec, **options)

    def _load(self) -> np.ndarray:
        with self._lock:
            if self._vectors is not None:
                return self._vectors
            if self.table.suffix == ".npy":
                vectors = np.load(self.table, mmap_mode="r", allow_pickle=False)
                words = read_vocab(self.vocab)
                files = (self.table, self.vocab)
            elif self.word2vec:
                words, vectors = read_word2vec(self.table)
                files = (self.table,)
            else:
                words, vectors = read_glove(self.table)
                files = (self.table,)
            if (
                vectors.ndim != 2
                or vectors.dtype.kind != "f"
                or len(words) != len(vectors)
                or not vectors.shape[1]
            ):
                raise InvalidInput(
                    f"word-vector table {self.table}: {len(words)} words for an array of shape "
                    f"{vectors.shape} and dtype {vectors.dtype}; expected floats (n_words, d)"
                )
            if vectors.dtype != np.float32:  # kept mapped when it already is float32
                vectors = vectors.astype(np.float32)
            self._revision = file_hash(*files)
            if self._expected is not None:
                diffs = self._expected.differences(self._spec(vectors.shape[1]))
                if diffs:
                    raise EncoderMismatch(
                        f"the collection was embedded with the word vectors {self.name!r}, but "
                        f"the table found now differs ({'; '.join(diffs)})"
                    )
            rows: dict[str, int] = {}
            for i, word in enumerate(words):
                rows.setdefault(word, i)  # a repeated word keeps its first (most frequent) row
            self._rows, self._vectors = rows, vectors
            return vectors

    def tokens(self, text: str) -> list[str]:
        """The words ``text`` is looked up as: the whole text if the table has it, else its
        words (known or not)."""
        self._load()
        key = text.lower() if self.lowercase else text
        if key.strip() in self._rows:
            return [key.strip()]
        return _TOKEN.findall(key)

    def encode(self, texts: Sequence[str], kind: Kind = "document") -> np.ndarray:
        """float32 ``(len(texts), dim)``: each text's word row, or the mean of its words'."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InvalidInput("texts must be a sequence of str")
        vectors = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = self.tokens(text)
            rows = [self._rows[w] for w in words if w in self._rows]
            if self.unknown == "error" and (len(rows) < len(words) or not rows):
                missing = [w for w in words if w not in self._rows] or [text]
                raise InvalidInput(f"not in the word table {self.table}: {missing[:10]}")
            if rows:  # else the zero vector, which matches nothing
                out[i] = vectors[rows[0]] if len(rows) == 1 else vectors[rows].mean(axis=0)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
        return as_matrix(out, len(texts), self.dim, repr(self.name))

    def config(self) -> EncoderSpec:
        return self._spec(self._load().shape[1])

    def _spec(self, dim: int) -> EncoderSpec:
        return EncoderSpec(
            kind="word-vectors",
            model=self.name,
            dim=dim,
            normalize=self.normalize,
            revision=self._revision,
        )

    def __repr__(self) -> str:
        return f"WordVectorEncoder({str(self.table)!r}, dim={self.dim})"
