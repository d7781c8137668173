"""Keep a CSV report from running formulas when a person opens it in a spreadsheet (CSV injection).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by Excel,
LibreOffice and Google Sheets as a formula: ``=HYPERLINK(…)`` or ``=cmd|' /C calc'!A0`` in a rejected
row's original values would run on the machine of whoever opens the report. As OWASP advises, such a
cell gets a leading ``'`` (the spreadsheet shows the text as written, without the quote). A plain
number or a phone number as people write it (``+905321234567``, ``+90 532 111 22 33``, ``-12.5``) is
left alone: it calls no function, and every report is full of numbers that users re-import. Parquet
stays raw.
"""

from __future__ import annotations

from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc

_TRIGGER = r"^[=+\-@\t\r]"
# A plain number, or a phone number as people write it (+90 532 111 22 33, +90 (532) 111-22-33):
# digits with spaces, brackets, dots and dashes after one leading +. Evaluated, such a cell is
# arithmetic on literals at worst; it calls nothing.
_NUMBER = r"^(-?[0-9]+([.,][0-9]+)?|\+[0-9][0-9 ()./-]*)$"

T = TypeVar("T", pa.Table, pa.RecordBatch)


def neutralised(data: T) -> T:
    """*data* with every string cell that a spreadsheet would run as a formula quoted with ``'``."""
    columns = []
    changed = False
    for column in data.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.and_kleene(
                pc.match_substring_regex(column, _TRIGGER),
                pc.invert(pc.match_substring_regex(column, _NUMBER)),
            )
            if pc.any(risky).as_py():
                columns.append(pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column))
                changed = True
                continue
        columns.append(column)
    if not changed:
        return data
    return type(data).from_arrays(columns, schema=data.schema)
