"""The Porter stemmer (M. F. Porter, "An algorithm for suffix stripping", 1980), for the
keyword index's English terms.

It follows the algorithm as SQLite's FTS5 ``porter`` tokenizer implements it (a test checks
the two agree on WordNet's vocabulary), so ranking matches what users of FTS5 expect. Input is
a lowercase ASCII word; words shorter than 3 letters are returned as they are. Imports only
the standard library.
"""

from __future__ import annotations

_VOWELS = frozenset("aeiou")


def _cons(w: str, i: int) -> bool:
    """Whether ``w[i]`` is a consonant: not a vowel, and ``y`` only after a vowel."""
    ch = w[i]
    if ch in _VOWELS:
        return False
    if ch == "y":
        return i == 0 or not _cons(w, i - 1)
    return True


def _m(stem: str) -> int:
    """Porter's measure: the number of vowel-consonant sequences ``VC`` in ``stem``."""
    n, i, ln = 0, 0, len(stem)
    while i < ln and _cons(stem, i):
        i += 1
    while i < ln:
        while i < ln and not _cons(stem, i):
            i += 1
        if i >= ln:
            break
        while i < ln and _cons(stem, i):
            i += 1
        n += 1
    return n


def _has_vowel(stem: str) -> bool:
    return any(not _cons(stem, i) for i in range(len(stem)))


def _double_cons(w: str) -> bool:
    return len(w) >= 2 and w[-1] == w[-2] and _cons(w, len(w) - 1)


def _cvc(w: str) -> bool:
    """Ends consonant-vowel-consonant, the last not w, x or y (as in -hop, not -hoy)."""
    n = len(w)
    if n < 3 or not _cons(w, n - 1) or _cons(w, n - 2) or not _cons(w, n - 3):
        return False
    return w[-1] not in "wxy"


def _replace(w: str, rules: tuple[tuple[str, str], ...], min_m: int) -> str:
    """Apply the first rule whose suffix ``w`` ends with, if the stem's measure > min_m."""
    for suffix, repl in rules:
        if w.endswith(suffix):
            stem = w[: len(w) - len(suffix)]
            return stem + repl if _m(stem) > min_m else w
    return w


_STEP2 = (
    ("ational", "ate"),
    ("tional", "tion"),
    ("enci", "ence"),
    ("anci", "ance"),
    ("izer", "ize"),
    ("bli", "ble"),
    ("alli", "al"),
    ("entli", "ent"),
    ("eli", "e"),
    ("ousli", "ous"),
    ("ization", "ize"),
    ("ation", "ate"),
    ("ator", "ate"),
    ("alism", "al"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("ousness", "ous"),
    ("aliti", "al"),
    ("iviti", "ive"),
    ("biliti", "ble"),
    ("logi", "log"),
)
_STEP3 = (
    ("icate", "ic"),
    ("ative", ""),
    ("alize", "al"),
    ("iciti", "ic"),
    ("ical", "ic"),
    ("ful", ""),
    ("ness", ""),
)
_STEP4 = (
    "al",
    "ance",
    "ence",
    "er",
    "ic",
    "able",
    "ible",
    "ant",
    "ement",
    "ment",
    "ent",
    "ion",
    "ou",
    "ism",
    "ate",
    "iti",
    "ous",
    "ive",
    "ize",
)


def _longest(w: str, suffixes) -> str | None:
    best = None
    for s in suffixes:
        if w.endswith(s) and (best is None or len(s) > len(best)):
            best = s
    return best


def _rules_longest(rules):
    # Porter's steps 2 and 3 match the longest suffix; order the rules so the first match is it.
    return tuple(sorted(rules, key=lambda r: -len(r[0])))


_STEP2 = _rules_longest(_STEP2)
_STEP3 = _rules_longest(_STEP3)


def stem(w: str) -> str:
    """The Porter stem of a lowercase ASCII word (``"running"`` -> ``"run"``)."""
    if len(w) < 3:
        return w
    # Step 1a: plurals.
    if w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("ies"):
        w = w[:-2]
    elif w.endswith("ss"):
        pass
    elif w.endswith("s"):
        w = w[:-1]
    # Step 1b: -eed, -ed, -ing.
    if w.endswith("eed"):
        if _m(w[:-3]) > 0:
            w = w[:-1]
    else:
        for suffix in ("ed", "ing"):
            if w.endswith(suffix) and _has_vowel(w[: -len(suffix)]):
                w = w[: -len(suffix)]
                if w.endswith(("at", "bl", "iz")):
                    w += "e"
                elif _double_cons(w) and w[-1] not in "lsz":
                    w = w[:-1]
                elif _m(w) == 1 and _cvc(w):
                    w += "e"
                break
    # Step 1c: y -> i after a vowel in the stem.
    if w.endswith("y") and _has_vowel(w[:-1]):
        w = w[:-1] + "i"
    w = _replace(w, _STEP2, 0)
    w = _replace(w, _STEP3, 0)
    # Step 4: strip a suffix where the measure of what remains exceeds 1.
    suffix = _longest(w, _STEP4)
    if suffix is not None:
        stem_ = w[: -len(suffix)]
        if _m(stem_) > 1 and (suffix != "ion" or stem_.endswith(("s", "t"))):
            w = stem_
    # Step 5: a final -e, and -ll.
    if w.endswith("e"):
        stem_ = w[:-1]
        m = _m(stem_)
        if m > 1 or (m == 1 and not _cvc(stem_)):
            w = stem_
    if _m(w) > 1 and _double_cons(w) and w.endswith("l"):
        w = w[:-1]
    return w
