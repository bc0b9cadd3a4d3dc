"""The README's map: WordNet glosses embedded with the default model, in 2-D by PCA, coloured
by lexicographer file (noun.animal, verb.motion, ...).

    apt-get install wordnet-base && pip install -e '.[embed,plot]'
    python bench/wordnet_map.py [--n 20000 --out docs/img/wordnet-map.png]

The passages are compare_apps.py's seeded sample, embedded with all-MiniLM-L6-v2 and cached
in ``$VECSTORE_BENCH_CACHE`` (a first run embeds them: about 100 passages/s on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="WordNet passages (default 20,000)")
    ap.add_argument("--method", choices=("pca", "umap"), default="pca")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "wordnet-map.png")
    args = ap.parse_args()

    from compare_apps import wordnet_sample

    import vecstore
    from vecstore.demo import LEXNAMES

    x, passages = wordnet_sample(args.n)
    with tempfile.TemporaryDirectory() as tmp, vecstore.open(Path(tmp) / "s") as db:
        c = db.create_collection("wordnet", dim=x.shape[1])
        c.add(
            [p.id for p in passages],
            vectors=x,
            documents=[p.text for p in passages],
            metadata=[
                {"lexname": LEXNAMES[p.metadata["lexfile"]], "lemma": p.metadata["lemma"]}
                for p in passages
            ],
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        c.plot(
            args.out,
            color_by="lexname",
            label_by="lemma",
            method=args.method,
            annotate=14,
            title=f"{args.n:,} WordNet glosses (all-MiniLM-L6-v2), {args.method.upper()}, "
            "coloured by lexicographer file",
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
