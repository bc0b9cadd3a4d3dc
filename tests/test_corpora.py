"""WordNet passages parse into clean records (skipped where wordnet-base is not installed)."""

from __future__ import annotations

import pytest

import vecstore
from vecstore.corpora import WORDNET_DIR, wordnet_passages


def test_missing_wordnet_says_what_to_install(tmp_path):
    with pytest.raises(vecstore.MissingDependency, match="apt-get install wordnet-base"):
        wordnet_passages(root=tmp_path)


def test_parses_synthetic_data_file(tmp_path):
    lines = [
        "  1 This software and database is being provided to you, the LICENSEE, by  \n",
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived  \n",
        '01234567 00 a 02 big(a) 0 large 0 000 | above average in size; "a big house"  \n',
    ]
    for fname in ("data.noun", "data.verb", "data.adj", "data.adv"):
        (tmp_path / fname).write_text("".join(lines))
    got = wordnet_passages(root=tmp_path)
    assert len(got) == 8
    assert got[0].id == "noun-00001740" and got[0].text == "entity: that which is perceived"
    assert got[1].text == 'big, large: above average in size; "a big house"'
    assert got[1].metadata == {"pos": "noun", "lemma": "big", "lexfile": 0}
    assert [p.id for p in wordnet_passages(3, root=tmp_path)] == [p.id for p in got[:3]]


@pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").is_file(), reason="apt-get install wordnet-base"
)
def test_real_wordnet():
    passages = wordnet_passages()
    assert len(passages) > 100_000
    assert len({p.id for p in passages}) == len(passages)
    assert all(p.text and ": " in p.text for p in passages[:1000])
