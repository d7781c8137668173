"""plan_columns() must agree with plan() on every row: encoding and part count."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from ulak.text.plan import Concat, MessageTooLong, plan
from ulak.text.vector import plan_columns

# Characters that exercise every branch: default alphabet, escapes, Turkish single/locking, UCS-2, astral.
ALPHABET = "abcXYZ 019@£$¥èéÇ\n\r{}[]~^|€\\çğıİşŞĞöüÖÜ" + "ПриветЖ中文" + "😀🎉"


def expected(
    texts: list[str | None], concat: Concat, languages: tuple[int, ...]
) -> list[tuple[str | None, int]]:
    out: list[tuple[str | None, int]] = []
    for text in texts:
        if text is None:
            out.append((None, 0))
            continue
        try:
            planned = plan(text, concat=concat, languages=languages)
            out.append((planned.encoding.name, planned.parts))
        except MessageTooLong as exc:
            out.append(("?", exc.parts))
    return out


def actual(
    texts: list[str | None], concat: Concat, languages: tuple[int, ...]
) -> list[tuple[str | None, int]]:
    encodings, parts = plan_columns(pa.array(texts, type=pa.string()), concat=concat, languages=languages)
    return list(zip(encodings.to_pylist(), parts.tolist(), strict=True))


def compare(texts: list[str | None], concat: Concat = Concat.UDH8, languages: tuple[int, ...] = (1,)) -> None:
    want = expected(texts, concat, languages)
    got = actual(texts, concat, languages)
    for text, w, g in zip(texts, want, got, strict=True):
        if w[0] == "?":  # past 255 parts plan() raises; only the count is comparable
            assert g[1] == w[1], text
        else:
            assert g == w, text


def test_typical_campaign_texts() -> None:
    compare(
        [
            "Merhaba Ayşe, 1.250,00 TL borcunuz var.",
            "Hello John, your code is 1234",
            "Sipariş № 5 hazır",
            "x" * 160,
            "x" * 161,
            "x" * 153 * 3,
            "x" * 153 * 3 + "y",
            "ş" * 155,
            "ş" * 156,
            "€" * 80,
            "€" * 81,
            "a" * 152 + "€",
            "a" * 153 + "€" + "a" * 10,
            "中" * 70,
            "中" * 71,
            "😀" * 35,
            "😀" * 36,
            "a" * 66 + "😀" + "中" * 10,
            None,
            "",
        ]
    )


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(alphabet=ALPHABET, max_size=700)), max_size=20),
    st.sampled_from(list(Concat)),
    st.sampled_from([(1,), (), (1, 2)]),
)
def test_agrees_with_plan(texts: list[str | None], concat: Concat, languages: tuple[int, ...]) -> None:
    compare(texts, concat, languages)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=140, max_value=320), st.text(alphabet="ab€şç中😀", min_size=1, max_size=8))
def test_boundaries(base: int, tail: str) -> None:
    compare(["a" * base + tail, "ş" * base + tail, "€" * (base // 2) + tail, "中" * (base // 2) + tail])


@settings(max_examples=150, deadline=None)
@given(
    literals=st.lists(st.text(alphabet=ALPHABET, max_size=60), min_size=1, max_size=4),
    rows=st.lists(
        st.tuples(
            st.text(alphabet=ALPHABET, min_size=1, max_size=30),
            st.text(alphabet=ALPHABET, min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=20,
    ),
    concat=st.sampled_from(list(Concat)),
)
def test_planning_from_a_templates_pieces_agrees_with_planning_its_texts(
    literals: list[str], rows: list[tuple[str, str]], concat: Concat
) -> None:
    first = pa.array([a for a, _ in rows], pa.string())
    second = pa.array([b for _, b in rows], pa.string())
    pieces: list[pa.Array | str] = [literals[0], first, *literals[1:2], second, *literals[2:]]
    texts = pa.array(
        ["".join(p if isinstance(p, str) else p[i].as_py() for p in pieces) for i in range(len(rows))],
        pa.string(),
    )
    encodings, parts = plan_columns(texts, concat=concat)
    from_pieces, parts_from_pieces = plan_columns(texts, concat=concat, pieces=pieces)
    assert from_pieces.to_pylist() == encodings.to_pylist()
    assert parts_from_pieces.tolist() == parts.tolist()
