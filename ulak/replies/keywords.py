"""Keywords in replies, matched the way people type them.

``fold`` makes "İPTAL", "iptal", "IPTAL", " Iptal!" and "ıptal 🙏" one word: Turkish dotted and
dotless i are one letter, case and accents (ç, ş, ğ, ö, ü) do not count, and whatever is not a
letter or a digit separates words. A reply matches a keyword when its first word is that keyword
("RET", "ret lütfen", "STOP."), so an opt-out is never missed for a polite word after it, and a
free reply that merely mentions the word later ("neden stop yazayım") is not one.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

# Every i-like letter to plain "i" before case folding: Python's casefold maps "İ" to "i̇" (two
# code points) and leaves "ı" alone, so Turkish and English spellings would not meet.
_I = str.maketrans({"İ": "i", "I": "i", "ı": "i", "i": "i"})


def fold(text: str) -> str:
    """*text* as comparable words: i-letters as one, casefolded, accents off, separated by single
    spaces (anything not a letter or digit separates)."""
    folded = unicodedata.normalize("NFKD", text.translate(_I).casefold())
    out: list[str] = []
    for ch in folded:
        category = unicodedata.category(ch)
        if category == "Mn":  # a combining accent: the letter it sat on stays
            continue
        out.append(ch if category[0] in "LN" else " ")
    return " ".join("".join(out).split())


def first_word(text: str) -> str:
    words = fold(text).split(" ", 1)
    return words[0] if words else ""


class Kind(StrEnum):
    OPT_OUT = "optout"
    OPT_IN = "optin"
    KEYWORD = "keyword"  # a help word or a brand's own keyword: answered automatically
    ANSWER = "answer"  # a survey's answer (cluster.engagement.replies)
    REPLY = "reply"  # anything else: kept as a free reply


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    keyword: str = ""  # the keyword matched, folded


@dataclass(frozen=True, slots=True)
class Keywords:
    """Opt-out, opt-in and answered words (help words and a brand's own: ``other``), any spelling:
    they are folded here. An opt-out word wins over any other."""

    optout: frozenset[str]
    optin: frozenset[str]
    other: frozenset[str] = frozenset()

    @classmethod
    def of(cls, optout: list[str], optin: list[str], other: list[str] | None = None) -> Keywords:
        return cls(
            frozenset(fold(w) for w in optout),
            frozenset(fold(w) for w in optin),
            frozenset(fold(w) for w in other or ()),
        )

    def classify(self, text: str) -> Verdict:
        word = first_word(text)
        if word and word in self.optout:
            return Verdict(Kind.OPT_OUT, word)
        if word and word in self.optin:
            return Verdict(Kind.OPT_IN, word)
        if word and word in self.other:
            return Verdict(Kind.KEYWORD, word)
        return Verdict(Kind.REPLY)
