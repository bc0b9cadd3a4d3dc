"""The keyword index's cost of analyzer version 2 (CJK unigrams beside bigrams).

    python bench/compare_languages.py [--n 20000]

Indexes the same documents into a collection analysed by version 1 (bigrams only, what
collections made before per-collection analyzers use) and one by version 2, and reports the
catalog's size and whether the terms differ: WordNet glosses (needs ``wordnet-base``; English,
so the two analyzers must agree term for term) and, for CJK, a seeded synthetic Chinese corpus
(sentences drawn from a fixed list of common words by a Zipf law). Vectors are zeros: only
the keyword index differs. Compares through the catalog file, so it needs no model.
"""

from __future__ import annotations

import argparse
import functools
import random
import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import vecstore  # noqa: E402
from vecstore import text  # noqa: E402
from vecstore.corpora import wordnet_passages  # noqa: E402

WORDS_ZH = (
    "我们 你们 他们 猫 狗 数据 数据库 向量 检索 搜索 文本 中文 语言 模型 学习 机器 深度 "
    "网络 信息 系统 用户 问题 方法 研究 结果 时间 世界 国家 城市 学校 老师 学生 朋友 "
    "工作 生活 今天 明天 喜欢 知道 可以 没有 因为 所以 但是 如果 已经 非常 重要 发展"
).split()


def zh_corpus(n: int, seed: int) -> list[str]:
    r = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(WORDS_ZH))]
    return ["".join(r.choices(WORDS_ZH, weights, k=r.randint(8, 40))) + "。" for _ in range(n)]


def catalog_bytes(docs: list[str], version: int) -> int:
    """Bytes of the catalog (with its WAL checkpointed) after indexing ``docs``."""
    made = vecstore.database.Analyzer
    # No public way makes a version-1 collection (only old stores have them): stand in for one
    vecstore.database.Analyzer = functools.partial(text.Analyzer, version=version)
    try:
        with tempfile.TemporaryDirectory() as d:
            with vecstore.open(d) as db:
                c = db.create_collection("c", dim=2)
                for i in range(0, len(docs), 5000):
                    part = docs[i : i + 5000]
                    ids = [str(i + j) for j in range(len(part))]
                    c.add(ids, vectors=np.zeros((len(part), 2), np.float32), documents=part)
            conn = sqlite3.connect(Path(d) / "catalog.db")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
            conn.close()
            return (Path(d) / "catalog.db").stat().st_size
    finally:
        vecstore.database.Analyzer = made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=8)
    args = ap.parse_args()
    v1, v2 = text.Analyzer("english", 1), text.Analyzer()
    wordnet = [p.text for p in wordnet_passages()]
    same = sum(v1.terms(t) == v2.terms(t) for t in wordnet)
    print(f"WordNet: {same}/{len(wordnet)} passages analysed identically by versions 1 and 2")
    corpora = {"WordNet": wordnet[: args.n], "synthetic Chinese": zh_corpus(args.n, args.seed)}
    for name, docs in corpora.items():
        a, b = catalog_bytes(docs, 1), catalog_bytes(docs, 2)
        print(
            f"{name}, {len(docs)} docs: catalog {a / 1e6:.2f} MB (v1) -> {b / 1e6:.2f} MB (v2), "
            f"x{b / a:.3f}"
        )


if __name__ == "__main__":
    main()
