"""Survey answers read from replies, and their arithmetic (sans IO).

A YES/NO answer is the reply's first word: "evet", "Evet!", "e", "yes", "tamam"… or "hayır",
"HAYIR", "h", "no"… (folded as keywords are: case, Turkish i/ı, accents, punctuation, emoji do
not matter). An NPS answer is the first whole number 0–10 in the reply ("10", "puanım 9", "9/10")
or a number word in Turkish or English ("on", "dokuz", "ten"). Anything else is not an answer.

NPS = % promoters (9–10) − % detractors (0–6), over everyone who gave a score.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ulak.replies.keywords import first_word, fold

YES_WORDS = frozenset({"evet", "e", "yes", "y", "tamam", "olur", "ok", "okay", "memnunum", "elbette"})
NO_WORDS = frozenset({"hayir", "h", "no", "n", "yok", "istemiyorum", "memnun degilim"})
_TURKISH = ("sifir", "bir", "iki", "uc", "dort", "bes", "alti", "yedi", "sekiz", "dokuz", "on")
_ENGLISH = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_NUMBER_WORDS = {w: i for words in (_TURKISH, _ENGLISH) for i, w in enumerate(words)}
_FIRST_NUMBER = re.compile(r"(?<!\d)(\d{1,2})(?!\d)")


def yes_no(text: str) -> str | None:
    """ "yes", "no" or None (no answer)."""
    word = first_word(text)
    if word in YES_WORDS:
        return "yes"
    if word in NO_WORDS or fold(text) in NO_WORDS:
        return "no"
    return None


def score(text: str) -> int | None:
    """The 0–10 score in *text*, or None."""
    folded = fold(text)
    match = _FIRST_NUMBER.search(folded)
    if match is not None:
        value = int(match.group(1))
        return value if 0 <= value <= 10 else None
    word = folded.split(" ", 1)[0] if folded else ""
    return _NUMBER_WORDS.get(word)


def group(value: int) -> str:
    """promoter (9–10), passive (7–8) or detractor (0–6)."""
    return "promoter" if value >= 9 else "passive" if value >= 7 else "detractor"


def nps(distribution: Mapping[int, int]) -> float | None:
    """% promoters − % detractors, in points (−100 to 100), or None with no score."""
    total = sum(distribution.values())
    if not total:
        return None
    promoters = sum(n for s, n in distribution.items() if s >= 9)
    detractors = sum(n for s, n in distribution.items() if s <= 6)
    return round(100.0 * (promoters - detractors) / total, 2)
