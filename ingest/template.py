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
        """The template with each field resolved to a column name (exact, else case-insensitive)."""
        by_fold: dict[str, list[str]] = {}
        for column in columns:
            by_fold.setdefault(column.strip().casefold(), []).append(column)
        resolved: list[tuple[bool, str]] = []
        for is_field, value in self.pieces:
            if not is_field or value in columns:
                resolved.append((is_field, value))
                continue
            matches = by_fold.get(value.casefold(), [])
            if len(matches) != 1:
                raise TemplateError(
                    f"the template uses {{{value}}} but no column is named {value!r}; the columns are: "
                    + ", ".join(columns),
                    field="template",
                )
            resolved.append((True, matches[0]))
        return Template(self.source, tuple(resolved))

    def render(self, table: pa.Table) -> tuple[pa.Array, pa.Array]:
        """Per row, the text (null where a field is empty) and the first empty field's name (or null)."""
        args: list[pa.Array | pa.Scalar] = []
        missing = pa.nulls(table.num_rows, pa.string())
        for is_field, value in reversed(self.pieces):
            if not is_field:
                continue
            column = table.column(value).combine_chunks()
            empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), True)
            missing = pc.if_else(empty, pa.scalar(value), missing)
        for is_field, value in self.pieces:
            if is_field:
                column = table.column(value).combine_chunks()
                args.append(pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column))
            else:
                args.append(pa.scalar(value))
        if not any(is_field for is_field, _ in self.pieces):
            return pa.array([self.source] * table.num_rows, pa.string()), missing
        return pc.binary_join_element_wise(*args, ""), missing
