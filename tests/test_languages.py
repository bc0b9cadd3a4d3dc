"""Keyword search in many languages: CJK single characters, per-collection stemming and
stopwords, stored with the collection and refused when unknown."""

from __future__ import annotations

import numpy as np
import pytest

import vecstore
from vecstore import text
from vecstore.cli import main


def _add(coll, docs: dict[str, str]) -> None:
    coll.add(list(docs), vectors=np.ones((len(docs), 2)), documents=list(docs.values()))


def test_a_single_cjk_character_finds_the_documents_holding_it(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("zh", dim=2)
        _add(c, {"a": "我的猫很可爱", "b": "狗在公园里跑", "c": "小猫咪", "d": "ねこが好き"})
        assert sorted(c.query("猫", mode="text").ids) == ["a", "c"]
        assert c.query("狗", mode="text").ids == ["b"]
        assert c.query("可爱", mode="text").ids == ["a"]  # a bigram, as before
        assert c.query("が", mode="text").ids == ["d"]  # kana too
        assert c.get(where_document={"$contains": "猫"}).ids == ["a", "c"]
    with vecstore.open(tmp_path / "s", read_only=True) as db:
        assert sorted(db.get_collection("zh").query("猫", mode="text").ids) == ["a", "c"]


def test_new_collections_analyse_english_as_version_1_did():
    v1, v2 = text.Analyzer("english", 1), text.Analyzer()
    for doc in ("The runners were running fast", "Café CAFÉS naïve résumé Straße", "x1 and y2"):
        assert v2.terms(doc) == v1.terms(doc) == text.terms(doc)
    assert v2.terms("向量数据库") == ["向", "量", "数", "据", "库", "向量", "量数", "数据", "据库"]
    assert v2.query_terms("数据库") == ["数据", "据库"]  # a run's bigrams are enough
    assert v2.query_terms("猫") == ["猫"]


@pytest.mark.parametrize(
    ("language", "docs", "query", "found"),
    [
        ("french", {"a": "Les chats mangeaient", "b": "Le chien dort"}, "mangeait", ["a"]),
        ("german", {"a": "Die Häuser sind alt", "b": "Ein Baum"}, "haus", ["a"]),
        ("spanish", {"a": "Los gatos corren", "b": "El perro duerme"}, "correr", ["a"]),
    ],
)
def test_a_collection_stems_and_drops_stopwords_in_its_language(
    tmp_path, language, docs, query, found
):
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=2, language=language)
        _add(c, docs)
        assert c.query(query, mode="text").ids == found
        english = db.create_collection("en", dim=2)
        _add(english, docs)
        assert english.query(query, mode="text").ids == []  # English stems differ
    with vecstore.open(tmp_path / "s") as db:  # the language is stored
        c = db.get_collection("c")
        assert c.language == language
        assert c.query(query, mode="text").ids == found
        assert db.verify().ok


def test_french_stopwords_are_not_indexed(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=2, language="french")
        _add(c, {"a": "le chat et la souris", "b": "une souris"})
        assert len(c.query("le la et", mode="text")) == 0
        assert sorted(c.query("souris", mode="text").ids) == ["a", "b"]


def test_an_unknown_language_is_refused(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        with pytest.raises(vecstore.InvalidInput, match="language must be one of"):
            db.create_collection("c", dim=2, language="klingon")
        assert db.list_collections() == []
        db.create_collection("c", dim=2, language="none")
        with pytest.raises(vecstore.InvalidInput, match="language"):
            db.get_or_create_collection("c", dim=2, language="french")


def test_export_and_import_keep_the_language(tmp_path):
    with vecstore.open(tmp_path / "s") as db:
        c = db.create_collection("c", dim=2, language="german")
        _add(c, {"a": "Die Häuser"})
        c.export(tmp_path / "c.jsonl")
        db.import_collection(tmp_path / "c.jsonl", name="copy")
        copy = db.get_collection("copy")
        assert copy.language == "german"
        assert copy.query("haus", mode="text").ids == ["a"]


def test_the_cli_creates_a_collection_in_a_language(tmp_path, capsys):
    store = str(tmp_path / "s")
    create = ["collections", "create", store]
    assert main([*create, "c", "--dim", "2", "--language", "french"]) == 0
    with vecstore.open(store) as db:
        assert db.get_collection("c").language == "french"
    assert main([*create, "d", "--dim", "2", "--language", "xx"]) != 0
    assert "language must be one of" in capsys.readouterr().err
