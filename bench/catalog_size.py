"""Bytes per row on disk: the catalog (ids, metadata, documents and their keyword index) and
the segment files, for 50,000 WordNet passages with 384-d vectors, compacted.

    python bench/catalog_size.py

Writes bench/results/catalog-size.json.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vecstore  # noqa: E402
from vecstore.corpora import wordnet_passages  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "catalog-size.json"


def main() -> None:
    ps = wordnet_passages(50000)
    x = np.random.default_rng(0).standard_normal((len(ps), 384)).astype(np.float32)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for docs in (False, True):
            p = f"{d}/s{int(docs)}"
            with vecstore.open(p, progress=False) as db:
                c = db.create_collection("wn", dim=384)
                for i in range(0, len(ps), 10000):
                    sl = ps[i : i + 10000]
                    c.add(
                        [q.id for q in sl],
                        vectors=x[i : i + 10000],
                        metadata=[q.metadata for q in sl],
                        documents=[q.text for q in sl] if docs else None,
                    )
                c.compact()
            cat = os.path.getsize(f"{p}/catalog.db")
            segs = sum(
                os.path.getsize(os.path.join(r, f))
                for r, _, fs in os.walk(f"{p}/collections")
                for f in fs
            )
            out["with_documents" if docs else "ids_and_metadata"] = {
                "rows": len(ps),
                "catalog_bytes_per_row": cat / len(ps),
                "segment_bytes_per_row": segs / len(ps),
            }
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
