"""Ingest against real files, real Ray Data and a real Redis: every reader, reason and bad upload."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import redis
import xlsxwriter

from ingest import errors
from ingest.prepare import PreparedCampaign, prepare
from ingest.sources import open_source
from ingest.spec import CampaignSpec
from tests.integration.binds import (
    OPERATORS,
)
from ulak import keys
from ulak.dispatch.message import plan_for
from ulak.settings import IngestConfig, OperatorConfig

TEMPLATE = "Merhaba {ad}, {tutar} TL borcunuz var."


@pytest.fixture
def run(ray_session: Any, redis_client: redis.Redis, redis_server_url: str, tmp_path: Path) -> Any:
    runs = iter(range(1000))

    def go(
        path: Path,
        spec: CampaignSpec | None = None,
        operators: tuple[OperatorConfig, ...] = OPERATORS,
        **config: Any,
    ) -> PreparedCampaign:
        return prepare(
            path,
            spec or CampaignSpec(template=TEMPLATE),
            config=IngestConfig(**config),
            operators=operators,
            redis_url=redis_server_url,
            directory=tmp_path / f"prepared-{next(runs)}",
        )

    return go


def write_csv(path: Path, rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8") -> Path:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def accepted(prepared: PreparedCampaign) -> list[dict[str, Any]]:
    return prepared.accepted_table().to_pylist()


def rejected(prepared: PreparedCampaign) -> list[tuple[int | None, str]]:
    return [(r["row"], r["reason"]) for t in prepared.rejected() for r in t.to_pylist()]


def test_csv_utf8_bom_semicolons(tmp_path: Path, run: Any) -> None:
    path = tmp_path / "kampanya.csv"
    rows = [
        ["Telefon", "ad", "tutar"],
        ["0532 111 22 33", "Ayşe", "1.250,00"],
        ["+905421112233", "Çağrı", "99"],
    ]
    write_csv(path, rows, delimiter=";", encoding="utf-8-sig")
    prepared = run(path)
    got = accepted(prepared)
    assert [(r["row"], r["msisdn"], r["operator"], r["text"]) for r in got] == [
        (1, "905321112233", "tcell", "Merhaba Ayşe, 1.250,00 TL borcunuz var."),
        (2, "905421112233", "voda", "Merhaba Çağrı, 99 TL borcunuz var."),
    ]
    assert {r["encoding"] for r in got} == {"gsm7+turkish-shift"}
    assert prepared.preview.as_dict()["operators"] == {
        "tcell": {"messages": 1, "parts": 1},
        "voda": {"messages": 1, "parts": 1},
    }


def test_cp1254_csv_with_turkish_names(tmp_path: Path, run: Any) -> None:
    path = write_csv(
        tmp_path / "excel-export.csv",
        [["gsm", "ad", "tutar"], ["05321112233", "Şükrü Iğdır", "10"], ["05331112233", "İpek Öztürk", "20"]],
        delimiter=";",
        encoding="cp1254",
    )
    got = accepted(run(path))
    assert [r["text"] for r in got] == [
        "Merhaba Şükrü Iğdır, 10 TL borcunuz var.",
        "Merhaba İpek Öztürk, 20 TL borcunuz var.",
    ]


def test_parquet_with_integer_phone_column(tmp_path: Path, run: Any) -> None:
    path = tmp_path / "list.parquet"
    pq.write_table(
        pa.table(
            {
                "msisdn": pa.array([5321112233, 905421112233], pa.int64()),
                "ad": ["A", "B"],
                "tutar": [1.5, 2.0],
            }
        ),
        path,
    )
    got = accepted(run(path))
    assert [(r["row"], r["msisdn"], r["text"]) for r in got] == [
        (1, "905321112233", "Merhaba A, 1.5 TL borcunuz var."),
        (2, "905421112233", "Merhaba B, 2 TL borcunuz var."),
    ]


def test_xlsx_numeric_cells_named_sheet_and_blank_rows(tmp_path: Path, run: Any) -> None:
    path = tmp_path / "liste.xlsx"
    book = xlsxwriter.Workbook(str(path))
    book.add_worksheet("Notlar").write(0, 0, "bu sayfa değil")
    sheet = book.add_worksheet("Müşteriler")
    for r, row in enumerate(
        [["Cep Telefonu", "Ad", "Tutar"], [5321112233, "Ayşe", 1250], [], ["0542 111 22 33", "Ali", 7.5]]
    ):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.close()
    got = accepted(run(path, CampaignSpec(template=TEMPLATE, sheet="Müşteriler")))
    assert [(r["row"], r["msisdn"], r["text"]) for r in got] == [
        (1, "905321112233", "Merhaba Ayşe, 1250 TL borcunuz var."),
        (3, "905421112233", "Merhaba Ali, 7.5 TL borcunuz var."),
    ]


def test_a_large_xlsx_is_read_a_slice_at_a_time(tmp_path: Path, run: Any) -> None:
    # Over two slices of sheet XML (ingest.sheets): sliced in the read task, rows numbered across
    # slices, a duplicate found slices apart, a blank row skipped.
    n = 70_000
    path = tmp_path / "buyuk.xlsx"
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    book.add_worksheet("Notlar")
    sheet = book.add_worksheet("Müşteriler")
    sheet.write_row(0, 0, ["Telefon", "Ad", "Tutar"])
    for i in range(1, n + 1):
        if i == 40_000:
            continue  # a blank row
        number = 5321000000 + (5 if i == n else i)  # the last row repeats row 5
        sheet.write_row(i, 0, [number, "Şule", i / 4])
    book.close()
    source = open_source(path, sheet="Müşteriler", max_bytes=1 << 30, max_rows=10**7)
    assert source.sheet_layout is not None and source.columns == ("Telefon", "Ad", "Tutar")
    prepared = run(path, CampaignSpec(template=TEMPLATE, sheet="Müşteriler"))
    got = prepared.accepted_table()
    assert prepared.preview.rows == n - 1
    assert got.num_rows == n - 2
    rows = got.column("row").to_pylist()
    assert rows == [r for r in range(1, n) if r != 40_000]
    by_row = dict(zip(rows, got.column("text").to_pylist(), strict=True))
    assert by_row[69_999] == "Merhaba Şule, 17499.75 TL borcunuz var."
    assert [(r["row"], r["reason"], r["detail"]) for t in prepared.rejected() for r in t.to_pylist()] == [
        (n, "duplicate", "same number as row 5")
    ]


def write_ods(path: Path, sheet: str, rows: list[list[str | float]]) -> Path:
    """A minimal OpenDocument spreadsheet (what LibreOffice writes, less styles): a ZIP whose first,
    uncompressed entry is the mimetype, and the cells in content.xml."""

    def cell(value: str | float) -> str:
        if isinstance(value, str):
            kind, text = 'office:value-type="string"', escape(value)
        else:
            kind, text = f'office:value-type="float" office:value="{value}"', str(value)
        return f"<table:table-cell {kind}><text:p>{text}</text:p></table:table-cell>"

    body = "".join("<table:table-row>" + "".join(map(cell, row)) + "</table:table-row>" for row in rows)
    ns = {
        "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
        "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
        "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    }
    xmlns = " ".join(f'xmlns:{k}="{v}"' for k, v in ns.items())
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {xmlns} office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="{escape(sheet)}">{body}'
        "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        zf.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        zf.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return path


def test_ods_sheet(tmp_path: Path, run: Any) -> None:
    path = write_ods(
        tmp_path / "liste.ods",
        "Müşteriler",
        [["telefon", "ad", "tutar"], [5321112233, "Şule", 99.9], ["+90 542 111 22 33", "İlker", "12"]],
    )
    got = accepted(run(path, CampaignSpec(template=TEMPLATE, sheet="Müşteriler")))
    assert [(r["row"], r["msisdn"], r["text"]) for r in got] == [
        (1, "905321112233", "Merhaba Şule, 99.9 TL borcunuz var."),
        (2, "905421112233", "Merhaba İlker, 12 TL borcunuz var."),
    ]


def test_every_rejection_reason_and_the_report(tmp_path: Path, run: Any, redis_client: redis.Redis) -> None:
    redis_client.sadd(keys.OPTOUT, "905330000007")
    lines = [
        "phone,ad,tutar",
        "05321112233,Ayşe,10",  # 1 ok
        "12345,Ali,10",  # 2 invalid_number
        "0212 111 22 33,Ali,10",  # 3 not_mobile (landline)
        "05051112233,Ali,10",  # 4 unknown_operator
        "05321112234,,10",  # 5 template_error (empty {ad})
        f"05321112235,{'ş' * 400},10",  # 6 too_many_parts (tcell allows 2)
        "05330000007,Opt,10",  # 7 opted_out
        "+90 532 111 22 33,Dup,10",  # 8 duplicate of row 1
        "05421112233,Voda,10,extra",  # 9 malformed_row (4 fields)
        "05421112299,Son,5",  # 10 ok
    ]
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepared = run(path)
    assert [r["row"] for r in accepted(prepared)] == [1, 10]
    assert sorted(rejected(prepared)) == [
        (2, "invalid_number"),
        (3, "not_mobile"),
        (4, "unknown_operator"),
        (5, "template_error"),
        (6, "too_many_parts"),
        (7, "opted_out"),
        (8, "duplicate"),
        (9, "malformed_row"),
    ]
    preview = prepared.preview
    assert preview.rows == preview.accepted + sum(preview.rejected.values()) == 10
    report = tmp_path / "rejected.csv"
    assert prepared.write_rejected(report) == 8
    table = pacsv.read_csv(report, convert_options=pacsv.ConvertOptions(column_types={"phone": pa.string()}))
    by_row = {r["row"]: r for r in table.to_pylist()}
    assert by_row[8]["detail"] == "same number as row 1"
    assert by_row[8]["phone"] == "+90 532 111 22 33"  # the original value, as written
    assert by_row[5]["detail"] == "no value for {ad}"
    assert by_row[6]["detail"] == "3 parts; the operator allows 2"
    assert pq.read_table(prepared_parquet(prepared, tmp_path)).num_rows == 8


def prepared_parquet(prepared: PreparedCampaign, tmp_path: Path) -> Path:
    path = tmp_path / "rejected.parquet"
    prepared.write_rejected(path)
    return path


def test_an_operator_without_national_tables_gets_ucs2(tmp_path: Path, run: Any) -> None:
    # The same Turkish text: one GSM part with the Turkish single shift where the SMSC takes it, two
    # UCS-2 parts where it does not (national_languages: []), whatever the concatenation.
    plain = OPERATORS[1].model_copy(update={"national_languages": ()})
    operators = (
        OPERATORS[0],
        plain,
        OPERATORS[1].model_copy(update={"name": "voda2", "prefixes": ("90543",)}),
    )
    text = "Sayın müşterimiz, " + "ş" * 60 + " borcunuz var; ödeme için şubeye uğrayın."
    path = write_csv(
        tmp_path / "t.csv",
        [["msisdn", "mesaj"], ["05321112233", text], ["05421112233", text], ["05431112233", text]],
    )
    prepared = run(path, CampaignSpec(text_column="mesaj"), operators=operators)
    got = [(r["operator"], r["encoding"], r["parts"]) for r in accepted(prepared)]
    expected = [
        (op.name, message.encoding.name, message.parts)
        for op in operators
        for message in [plan_for(text, op, reference=0)]
    ]
    assert got == expected
    assert [e[2] for e in expected] == [1, 2, 1]
    assert expected[1][1] == "ucs2" and expected[0][1] == expected[2][1] != "ucs2"


def test_text_column_and_empty_text(tmp_path: Path, run: Any) -> None:
    path = write_csv(
        tmp_path / "t.csv", [["msisdn", "mesaj"], ["05321112233", "Selam"], ["05331112233", "  "]]
    )
    prepared = run(path, CampaignSpec(text_column="mesaj"))
    assert [r["text"] for r in accepted(prepared)] == ["Selam"]
    assert rejected(prepared) == [(2, "empty_text")]


def test_duplicates_across_blocks_first_row_wins(tmp_path: Path, run: Any) -> None:
    n = 150_000  # several Ray Data blocks
    numbers = [f"90532{i:07d}" for i in range(n)]
    numbers[n - 1] = numbers[0]  # the last row repeats the first, blocks apart
    numbers[n - 2] = numbers[70_000]
    pacsv.write_csv(pa.table({"phone": numbers, "ad": ["x"] * n, "tutar": ["1"] * n}), tmp_path / "big.csv")
    prepared = run(tmp_path / "big.csv")
    assert prepared.blocks > 1
    refused = [(r["row"], r["reason"], r["detail"]) for t in prepared.rejected() for r in t.to_pylist()]
    assert refused == [
        (n - 1, "duplicate", "same number as row 70001"),
        (n, "duplicate", "same number as row 1"),
    ]
    assert prepared.preview.accepted == prepared.accepted_table().num_rows == n - 2
    assert prepared.preview.rejected == {"duplicate": 2}


@pytest.mark.parametrize(
    ("name", "content", "error", "words"),
    [
        ("empty.csv", b"", errors.EmptyFile, "is empty"),
        ("header.csv", b"phone,ad,tutar\n", errors.NoRows, "no rows"),
        ("blank.csv", b"\n\n  \n", errors.EmptyFile, "no text"),
        ("list.pdf", b"%PDF-1.4", errors.UnsupportedFormat, ".pdf files are not supported"),
        (
            "list.xlsx",
            b"phone,ad\n05321112233,x\n",
            errors.FormatMismatch,
            "named .xlsx but its content is CSV",
        ),
        ("list.csv", b"\x00\x01\x02binary\x00", errors.NotText, "not text"),
        ("list.xlsx", b"PK\x03\x04garbage", errors.CorruptFile, "damaged"),
        ("names.csv", b"isim,soyisim\nAli,Veli\n", errors.NoPhoneColumn, "no phone number column"),
    ],
)
def test_bad_uploads(tmp_path: Path, run: Any, name: str, content: bytes, error: type, words: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=words):
        run(path)


def test_template_field_no_column_has(tmp_path: Path, run: Any) -> None:
    path = write_csv(tmp_path / "t.csv", [["phone", "ad"], ["05321112233", "x"]])
    with pytest.raises(errors.TemplateError, match=r"\{tutar\} but no column .* the columns are: phone, ad"):
        run(path)


def test_limits(tmp_path: Path, run: Any) -> None:
    path = write_csv(tmp_path / "t.csv", [["phone", "ad", "tutar"]] + [["05321112233", "x", "1"]] * 20)
    with pytest.raises(errors.FileTooLarge, match="the limit is 100"):
        run(path, max_file_bytes=100)
    with pytest.raises(errors.TooManyRows, match="more than 10 rows"):
        run(path, max_rows=10)


def test_empty_header_only_parquet_and_sheet(tmp_path: Path, run: Any) -> None:
    pq.write_table(pa.table({"phone": pa.array([], pa.string())}), tmp_path / "e.parquet")
    with pytest.raises(errors.NoRows):
        run(tmp_path / "e.parquet")
    book = xlsxwriter.Workbook(str(tmp_path / "h.xlsx"))
    book.add_worksheet().write_row(0, 0, ["phone", "ad", "tutar"])
    book.close()
    with pytest.raises(errors.NoRows, match="no rows"):
        run(tmp_path / "h.xlsx")


def test_password_protected_xlsx(tmp_path: Path, run: Any) -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = tmp_path / "plain.xlsx"
    book = xlsxwriter.Workbook(str(plain))
    book.add_worksheet().write_row(0, 0, ["phone"])
    book.close()
    locked = tmp_path / "locked.xlsx"
    with plain.open("rb") as src, locked.open("wb") as dst:
        OOXMLFile(src).encrypt("parola", dst)
    with pytest.raises(errors.EncryptedFile, match="password-protected"):
        run(locked)


def test_allowed_operators(tmp_path: Path, run: Any) -> None:
    path = write_csv(
        tmp_path / "t.csv", [["phone", "ad", "tutar"], ["05321112233", "a", "1"], ["05421112233", "b", "2"]]
    )
    prepared = run(path, CampaignSpec(template=TEMPLATE, operators=("voda",)))
    assert [r["operator"] for r in accepted(prepared)] == ["voda"]
    assert rejected(prepared) == [(1, "unknown_operator")]
    with pytest.raises(errors.UnknownOperator, match=r"unknown operators \['nope'\]"):
        run(path, CampaignSpec(template=TEMPLATE, operators=("nope",)))
