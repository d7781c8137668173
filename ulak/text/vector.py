"""``plan()``'s encoding and part count for a whole Arrow column at once.

Ingest needs the encoding and part count of every row (the cost preview, the part limit) but not the
PDU payloads, and a million calls to :func:`ulak.text.plan.plan` cost 8–18 s. This module gets the same
answer from a few RE2 passes per candidate encoding:

* a character class per alphabet tells whether a text is representable and how many of its characters
  cost two septets (an escape plus the character);
* with no two-unit item (escape or surrogate pair) the split is pure arithmetic:
  ``1 if units <= single-part capacity else ceil(units / per-part capacity)``;
* with two-unit items a split point may move back by one, so ``p`` parts hold between
  ``p * capacity - (p - 1)`` and ``p * capacity`` units; where both bounds give the same ``p`` it is exact;
* only the rest (a length within a few units of a part boundary, and only if the encoding choice depends
  on it) goes to ``plan()``, once per distinct text.

Candidates are tried in ``plan()``'s order with its tie rule (fewest parts, first listed wins, stop at one
part), so the result equals ``plan()``'s on every row; ``tests/unit/test_vector_plan.py`` checks that.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ulak.text.alphabet import TURKISH, alphabet
from ulak.text.plan import (
    _NATIONAL,
    GSM7,
    MAX_PARTS,
    UCS2,
    Concat,
    Encoding,
    MessageTooLong,
    _capacity,
    _concat_ie_len,
    _udh_len,
    plan,
)

_ESCAPE = "\x1b"
_ASTRAL = "[\U00010000-\U0010ffff]"


@dataclass(frozen=True)
class _Candidate:
    encoding: Encoding
    allowed: str  # RE2 pattern: the whole text is made of representable characters
    double: str | None  # RE2 class of characters that cost two units (None: there are none)
    single_capacity: int
    part_capacity: int


def _char_class(chars: set[str]) -> str:
    return "[" + "".join(re.escape(c) if c not in "-]\\^" else "\\" + c for c in sorted(chars)) + "]"


@cache
def _candidates(concat: Concat, languages: tuple[int, ...]) -> tuple[_Candidate, ...]:
    encodings = [GSM7] + [enc for lang in languages for enc in _NATIONAL[lang]] + [UCS2]
    out = []
    for enc in encodings:
        single = _capacity(enc, _udh_len(enc.language_ies()))
        multi = _capacity(enc, 1 + len(enc.language_ies()) + _concat_ie_len(concat))
        if enc.ucs2:
            out.append(_Candidate(enc, r"(?s)^.*$", _ASTRAL, single, multi))
            continue
        table = alphabet(enc.locking, enc.single_shift).encode_table
        ones = {chr(cp) for cp, s in table.items() if len(s) == 1 and s.isascii()}
        twos = {chr(cp) for cp, s in table.items() if len(s) == 2 and s[0] == _ESCAPE}
        out.append(
            _Candidate(
                enc, "^" + _char_class(ones | twos) + "*$", _char_class(twos) if twos else None, single, multi
            )
        )
    return tuple(out)


Pieces = Sequence[pa.Array | str]


def plan_columns(
    texts: pa.Array | pa.ChunkedArray,
    *,
    concat: Concat = Concat.UDH8,
    languages: tuple[int, ...] = (TURKISH,),
    pieces: Pieces | None = None,
) -> tuple[pa.Array, npt.NDArray[np.int32]]:
    """Per text: the encoding ``plan()`` would choose (dictionary-encoded names) and its part count.

    Null texts get a null encoding and 0 parts. Part counts are not capped: compare them with the
    operator's limit yourself (``plan()`` would raise :class:`MessageTooLong`).

    *pieces*, when given, are what each text is the concatenation of, in order: columns (as long as
    *texts*, non-null wherever the text is) and literal strings, as a template renders them. Whether a
    text fits an alphabet, and how many of its characters cost two units, are then worked out on the
    pieces: per character, so the sums are exact, and a template's literal text (most of a message)
    is looked at once instead of on every row.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    literals, columns = _split_pieces(pieces)
    n = len(texts)
    candidates = _candidates(concat, languages)
    names = [c.encoding.name for c in candidates]
    best_parts = np.full(n, np.iinfo(np.int32).max, dtype=np.int32)
    best_enc = np.full(n, -1, dtype=np.int8)
    undecided = np.zeros(n, dtype=bool)
    valid = ~np.asarray(texts.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    lengths = np.asarray(pc.fill_null(pc.utf8_length(texts), 0).to_numpy(), dtype=np.int64)

    todo = np.flatnonzero(valid)
    for index, cand in enumerate(candidates):
        if todo.size == 0:
            break
        if pieces is None:
            ok, doubles = _fits(texts, todo, n, cand)
        else:
            ok, doubles = _fits_pieces(literals, columns, todo, n, cand)
        rows = todo[ok]
        if rows.size == 0:
            continue
        lower, exact = _part_bounds(lengths[rows] + doubles, doubles, cand)
        current = best_parts[rows]
        # A known count wins if it is smaller; an unknown one (pairs to keep together) only matters if
        # its lower bound could beat the best so far: then only plan() can tell.
        wins = exact & (lower < current)
        best_parts[rows[wins]] = lower[wins]
        best_enc[rows[wins]] = index
        undecided[rows[~exact & (lower < current)]] = True
        # Rows at one part are settled: later candidates can only tie, and ties go to the earlier one.
        settled = np.zeros(n, dtype=bool)
        settled[rows[wins & (lower == 1)]] = True
        todo = todo[~settled[todo]]

    parts = np.where(valid, best_parts, 0).astype(np.int32)
    enc_codes = best_enc.copy()
    redo = np.flatnonzero(undecided)
    if redo.size:
        _replan(texts, redo, names, enc_codes, parts, concat=concat, languages=languages)
    encodings = pa.DictionaryArray.from_arrays(
        pa.array(enc_codes, type=pa.int8(), mask=enc_codes < 0), pa.array(names, type=pa.string())
    )
    return encodings, parts


def _split_pieces(pieces: Pieces | None) -> tuple[str, list[pa.Array]]:
    """A template's literal text (all of it, joined) and its columns (combined into one chunk)."""
    literals = "".join(p for p in pieces or () if isinstance(p, str))
    columns = [
        p.combine_chunks() if isinstance(p, pa.ChunkedArray) else p
        for p in pieces or ()
        if not isinstance(p, str)
    ]
    return literals, columns


def _part_bounds(
    units: npt.NDArray[np.int64], doubles: npt.NDArray[np.int64], cand: _Candidate
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
    """For texts of *units* (of which *doubles* cost two): the fewest parts *cand* needs, and
    whether that is the count (else only ``plan()`` can tell)."""
    one = units <= cand.single_capacity
    lower = np.where(one, 1, -(-units // cand.part_capacity)).astype(np.int32)
    # A pair never splits, so each boundary wastes at most one unit: p parts hold at least
    # p * capacity - (p - 1) units. Where that bound and the plain one agree, the count is exact.
    upper = np.where(one, 1, -(-(units - 1) // (cand.part_capacity - 1))).astype(np.int32)
    return lower, one | (doubles == 0) | (lower == upper)


def _replan(
    texts: pa.Array,
    redo: npt.NDArray[np.intp],
    names: list[str],
    enc_codes: npt.NDArray[np.int8],
    parts: npt.NDArray[np.int32],
    *,
    concat: Concat,
    languages: tuple[int, ...],
) -> None:
    """The rows whose count the bounds could not settle (pairs to keep together), planned one by
    one with ``plan()`` (each distinct text once); their encoding and parts set in place."""
    by_text: dict[str, tuple[int, int]] = {}
    code_of = {name: i for i, name in enumerate(names)}
    for row, text in zip(redo, texts.take(pa.array(redo)).to_pylist(), strict=True):
        found = by_text.get(text)
        if found is None:
            try:
                planned = plan(text, concat=concat, languages=languages, max_parts=MAX_PARTS)
                found = (code_of[planned.encoding.name], planned.parts)
            except MessageTooLong as exc:
                found = (int(enc_codes[row]), exc.parts)
            by_text[text] = found
        enc_codes[row], parts[row] = found


def _fits(
    texts: pa.Array, todo: npt.NDArray[np.intp], n: int, cand: _Candidate
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Which texts of *todo* the candidate can carry, and for those, how many two-unit characters."""
    sub = texts.take(pa.array(todo)) if todo.size < n else texts
    ok = np.asarray(pc.match_substring_regex(sub, cand.allowed).to_numpy(zero_copy_only=False), bool)
    if cand.double is None or not ok.any():
        return ok, np.zeros(int(ok.sum()), dtype=np.int64)
    sub_ok = sub.filter(pa.array(ok)) if not ok.all() else sub
    return ok, np.asarray(pc.count_substring_regex(sub_ok, cand.double).to_numpy(), dtype=np.int64)


def _fits_pieces(
    literals: str, columns: list[pa.Array], todo: npt.NDArray[np.intp], n: int, cand: _Candidate
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """:func:`_fits` for texts made of *columns* and *literals*: each piece is checked on its own."""
    literal = pa.array([literals], pa.string())
    if not pc.match_substring_regex(literal, cand.allowed)[0].as_py():
        return np.zeros(todo.size, dtype=bool), np.zeros(0, dtype=np.int64)
    ok = np.ones(todo.size, dtype=bool)
    subs = [c.take(pa.array(todo)) if todo.size < n else c for c in columns]
    for sub in subs:
        ok &= np.asarray(
            pc.fill_null(pc.match_substring_regex(sub, cand.allowed), False).to_numpy(zero_copy_only=False),
            bool,
        )
    doubles = np.zeros(int(ok.sum()), dtype=np.int64)
    if cand.double is None or not ok.any():
        return ok, doubles
    doubles += int(pc.count_substring_regex(literal, cand.double)[0].as_py())
    mask = pa.array(ok)
    for sub in subs:
        sub_ok = sub.filter(mask) if not ok.all() else sub
        doubles += np.asarray(pc.count_substring_regex(sub_ok, cand.double).to_numpy(), dtype=np.int64)
    return ok, doubles
