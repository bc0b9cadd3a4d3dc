"""Real text available offline: WordNet's glosses from Debian's ``wordnet-base`` package.

``apt-get install wordnet-base`` puts about 117,000 synsets in /usr/share/wordnet/data.*;
each becomes one passage (its words and gloss). Used by the benchmarks and demos.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import MissingDependency

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
