"""Quote what a user sent inside an error message, without letting the message grow with the input.

An error names the value at fault (the column, the URI, the job id), but a hostile or careless request
can make that value megabytes long: a 100,000-column header, a 60 KB job id. Every message that quotes
user input goes through these, so an error response stays a few hundred bytes whatever was sent.
"""

from __future__ import annotations

from collections.abc import Iterable

QUOTE_CHARS = 80  # of one quoted value
LIST_ITEMS = 20  # of a list of names (columns, sheets)


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """``repr``-style quoting of *value*, cut to *limit* characters with a count of what was left out."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"… ({len(text) - limit:,} more characters)"


def listed(names: Iterable[object], *, limit: int = LIST_ITEMS, each: int = 40) -> str:
    """Comma-separated *names*, each cut to *each* characters, at most *limit* of them."""
    items = [str(n) for n in names]
    shown = [n if len(n) <= each else n[:each] + "…" for n in items[:limit]]
    more = f", … ({len(items) - limit:,} more)" if len(items) > limit else ""
    return ", ".join(shown) + more


def clipped(text: str, limit: int) -> str:
    """*text* itself, cut to *limit* characters (for whole messages, as a last line of defence)."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit:,} more characters)"
