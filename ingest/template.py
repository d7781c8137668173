"""Message templates such as ``Merhaba {ad}, {tutar} TL ödemeniz bekleniyor.`` rendered per column.

A template is parsed once, its fields are matched to the upload's columns before anything runs (a
field that no column has is an error naming the columns there are), and rendering is one Arrow kernel
over the whole batch: no per-row Python. ``{{`` and ``}}`` write literal braces. Format specs
(``{tutar:.2f}``) are refused: the values are the file's own text, sent as written.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ingest.errors import TemplateError
from ulak.quoting import clipped, listed, quoted


@dataclass(frozen=True)
class Template:
    source: str
    pieces: tuple[tuple[bool, str], ...]  # (is_field, literal text or column name)

    @classmethod
    def parse(cls, source: str) -> Template:
        if not source.strip():
            raise TemplateError("the message template is empty", field="template")
        pieces: list[tuple[bool, str]] = []
        try:
            parsed = list(string.Formatter().parse(source))
        except ValueError as exc:
            raise TemplateError(
                f"the template is not valid: {exc}; write literal braces as {{{{ and }}}}", field="template"
            ) from None
        for literal, field, spec, conversion in parsed:
            if literal:
                pieces.append((False, literal))
            if field is None:
                continue
            if not field.strip():
                raise TemplateError(
                    "the template has an empty field {}; name a column, e.g. {ad}", field="template"
                )
            if spec or conversion:
                raise TemplateError(
                    f"the template field {{{field}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}} has a format; values are sent as the file has them, "
                    f"so write {{{field}}}",
                    field="template",
                )
            pieces.append((True, field.strip()))
        return cls(source, tuple(pieces))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for is_field, name in self.pieces if is_field))

    def bind(self, columns: Sequence[str]) -> Template:
        """The template with each field resolved to a column name (see :func:`match_column`)."""
        resolved: list[tuple[bool, str]] = []
        for is_field, value in self.pieces:
            if not is_field:
                resolved.append((is_field, value))
                continue
            column = match_column(columns, value)
            if column is None:
                raise TemplateError(
                    f"the template uses {{{clipped(value, 80)}}} but no column is named {quoted(value)}; "
                    f"the columns are: {listed(columns)}",
                    field="template",
                )
            resolved.append((True, column))
        return Template(self.source, tuple(resolved))

    def pieces_of(self, table: pa.Table) -> list[pa.Array | str]:
        """What each rendered text is the concatenation of, in order: a column per field, the
        literal text between them (``ulak.text.vector.plan_columns`` plans from these)."""
        return [
            table.column(value).combine_chunks() if is_field else value for is_field, value in self.pieces
        ]

    def render(self, table: pa.Table) -> tuple[pa.Array, pa.Array]:
        """Per row, the text (null where a field is empty) and the first empty field's name (or null)."""
        columns = {name: table.column(name).combine_chunks() for name in self.fields}
        missing = pa.nulls(table.num_rows, pa.string())
        for name in reversed(self.fields):  # the first empty field in the template wins
            empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(columns[name]), ""), True)
            missing = pc.if_else(empty, pa.scalar(name), missing)
        args: list[pa.Array | pa.Scalar] = [
            pc.if_else(pc.equal(columns[value], ""), pa.scalar(None, pa.string()), columns[value])
            if is_field
            else pa.scalar(value)
            for is_field, value in self.pieces
        ]
        if not self.fields:  # the literal pieces hold the text with {{ and }} already unescaped
            return pa.array(
                ["".join(value for _, value in self.pieces)] * table.num_rows, pa.string()
            ), missing
        return pc.binary_join_element_wise(*args, ""), missing


def match_column(columns: Sequence[str], wanted: str) -> str | None:
    """The column named *wanted*: exactly, else the one column equal to it ignoring case and surrounding
    spaces; None when there is none or more than one."""
    if wanted in columns:
        return wanted
    folded = [c for c in columns if c.strip().casefold() == wanted.strip().casefold()]
    return folded[0] if len(folded) == 1 else None
