"""Templates render as one Arrow kernel; escaped braces are literal braces whether or not there are fields."""

from __future__ import annotations

import pyarrow as pa

from ingest.template import Template


def test_escaped_braces_without_fields() -> None:
    texts, missing = Template.parse("Kodunuz {{KOD}} ile girin").render(pa.table({"phone": ["1", "2"]}))
    assert texts.to_pylist() == ["Kodunuz {KOD} ile girin"] * 2
    assert missing.to_pylist() == [None, None]


def test_escaped_braces_with_fields() -> None:
    texts, _ = Template.parse("{{ {ad} }}").render(pa.table({"ad": ["Ayşe"]}))
    assert texts.to_pylist() == ["{ Ayşe }"]
