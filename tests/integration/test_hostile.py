"""Hostile and careless input over real HTTP: every bad upload, URI, option and query gets the right
4xx with a stable code and field, a short message naming the user's file, and leaves nothing behind.

Its own stack (Redis, the API process, Ray, the simulator): a small row limit, a URI root, webhooks
limited to public addresses, and only /readyz public.
"""

from __future__ import annotations

import csv as csvmod
import io
import os
import random
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import ray
import redis
import xlsxwriter

from api.cli.stack import stop_actors
from api.keys import create_key
from cluster.jobs.options import JobOptions
from cluster.jobs.states import JobState
from cluster.jobs.store import JobStore
from tests.helpers import ApiProcess, SimProcess, wait_for
from ulak.redis_server import RedisServer

MAX_ROWS = 1000
MAX_BYTES = 8_000_000
TEMPLATE = "Merhaba {ad}"


@dataclass
class Hostile:
    workdir: Path
    api: ApiProcess
    redis: redis.Redis
    token: str

    def client(self, token: str | None = "") -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"} if token is not None else {}
        return httpx.Client(base_url=self.api.url, headers=headers, timeout=60)

    @property
    def uploads(self) -> Path:
        return self.workdir / "uploads"

    def leftovers(self) -> tuple[int, list[str]]:
        jobs_dir = self.workdir / "jobs"
        return self.redis.zcard("ulak:jobs"), sorted(os.listdir(jobs_dir)) if jobs_dir.exists() else []  # type: ignore[return-value]


@pytest.fixture(scope="module")
def hostile(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    workdir = tmp_path_factory.mktemp("hostile")
    (workdir / "uploads").mkdir()
    sim = SimProcess(workdir, "--account", "test:secret", "--seed", "3")
    server = RedisServer(workdir / "redis", appendonly=False).start()
    client = redis.Redis.from_url(server.url)
    namespace = f"ulak-hostile-{uuid.uuid4().hex[:6]}"
    config_dir = workdir / "configs"
    config_dir.mkdir()
    (config_dir / "operators.yaml").write_text(
        "operators:\n"
        "  - {name: tcell, prefixes: ['90532'], tps: 100,\n"
        f"      binds: [{{name: t1, host: 127.0.0.1, port: {sim.port}, system_id: test, "
        "password_env: ULAK_TEST_SIM_PASSWORD}]}\n"
    )
    (config_dir / "ulak.yaml").write_text(
        f"redis: {{url: '{server.url}'}}\n"
        f"jobs: {{data_dir: '{workdir / 'jobs'}', receipt_wait: 1}}\n"
        f"ingest: {{max_file_bytes: {MAX_BYTES}, max_rows: {MAX_ROWS}}}\n"
        f"api: {{uri_root: '{workdir / 'uploads'}', public: [readyz]}}\n"
    )
    env = {
        "ULAK_TEST_SIM_PASSWORD": "secret",
        "ULAK_RAY__ADDRESS": ray.get_runtime_context().gcs_address,
        "ULAK_RAY__NAMESPACE": namespace,
    }
    token, _ = create_key(client, name="hostile")
    api = ApiProcess(workdir, config_dir, env)
    try:
        yield Hostile(workdir, api, client, token)
    finally:
        api.stop()
        stop_actors(namespace)
        client.close()
        server.stop()
        sim.stop()


def _xlsx(rows: list[list[Any]], *, sheet: str = "Sheet1") -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    ws = book.add_worksheet(sheet)
    for i, row in enumerate(rows):
        ws.write_row(i, 0, row)
    book.close()
    return buffer.getvalue()


def _encrypted_xlsx() -> bytes:
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(_xlsx([["telefon"], ["+905321111111"]]))).encrypt("parola", out)
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


GOOD = b"telefon,ad\n+905321111111,Ayse\n"
_rng = random.Random(5)
BINARY_NO_NUL = bytes(_rng.choice([*range(1, 9), *range(14, 32), *range(128, 256)]) for _ in range(4000))

# (file name, content, options, status, code, field)
UPLOADS: list[tuple[str, bytes, dict[str, str], int, str, str | None]] = [
    ("kampanya.csv", b"", {"template": "x"}, 422, "empty_file", None),
    ("kampanya.csv", b"telefon,ad\n", {"template": "x"}, 422, "no_rows", "file"),
    ("kampanya.csv", b"\x00\x01\x02binary" * 100, {"template": "x"}, 422, "not_text", "file"),
    ("kampanya.csv", BINARY_NO_NUL, {"template": "x"}, 422, "not_text", "file"),
    ("kampanya.xlsx", _encrypted_xlsx(), {"template": "x"}, 422, "encrypted_file", "file"),
    (
        "kampanya.xlsx",
        _zip({"xl/workbook.xml": b"<broken", "[Content_Types].xml": b"x"}),
        {"template": "x"},
        422,
        "corrupt_file",
        "file",
    ),
    ("kampanya.xlsx", b"PK\x03\x04 not really a zip", {"template": "x"}, 422, "corrupt_file", "file"),
    (
        "kampanya.xls",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"junk" * 500,
        {"template": "x"},
        422,
        "corrupt_file",
        "file",
    ),
    (
        "kampanya.xlsx",
        _xlsx([["telefon", "ad"], ["+905321111111", "A"]]),
        {"template": "x", "sheet": "Yok"},
        422,
        "sheet_not_found",
        "sheet",
    ),
    (
        "kampanya.xlsx",
        _xlsx([["isim", "ad"], ["x", "A"]]),
        {"template": "x"},
        422,
        "no_phone_column",
        "phone_column",
    ),
    (
        "kampanya.xlsx",
        _xlsx([["telefon", "ad"], ["+905321111111", "A"]]),
        {"template": "Selam {soyad}"},
        422,
        "template_error",
        "template",
    ),
    (
        "kampanya.ods",
        _zip({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet", "content.xml": b"<x"}),
        {"template": "x"},
        422,
        "corrupt_file",
        "file",
    ),
    (
        "kampanya.csv",
        b"telefon\n" + b"+905321111111\n" * (MAX_ROWS + 1),
        {"template": "x"},
        413,
        "too_many_rows",
        "file",
    ),
    ("kampanya.csv", GOOD, {"text_column": "mesaj"}, 422, "column_not_found", "text_column"),
    ("kampanya.csv", GOOD, {"template": "{ad.__class__}"}, 422, "template_error", "template"),
    ("kampanya.csv", GOOD, {"template": "{0}"}, 422, "template_error", "template"),
    ("kampanya.csv", GOOD, {"template": "{ad!r}"}, 422, "template_error", "template"),
    (
        "kampanya.csv",
        b"telefon," + b"x" * (3 << 20) + b"\n+905321111111,a\n",
        {"template": "x"},
        422,
        "corrupt_file",
        "file",
    ),
    (  # one header cell over the csv module's field limit (128 KiB)
        "kampanya.csv",
        b"telefon," + b"x" * 200_000 + b"\n+905321111111,a\n",
        {"template": "x"},
        422,
        "corrupt_file",
        "file",
    ),
    ("kampanya.json", GOOD, {"template": "x"}, 415, "unsupported_format", "file"),
    ("kampanya.exe", GOOD, {"template": "x"}, 415, "unsupported_format", "file"),
    ("kampanya.xlsx", GOOD, {"template": "x"}, 415, "format_mismatch", "file"),
    ("kampanya.zip", _zip({"a.txt": b"x"}), {"template": "x"}, 415, "unsupported_format", "file"),
    (
        "kampanya.csv",
        GOOD,
        {"template": "x", "send_window": "09:00-09:00"},
        422,
        "invalid_options",
        "send_window",
    ),
    (
        "kampanya.csv",
        GOOD,
        {"template": "x", "send_window": "23:00-24:59"},
        422,
        "invalid_options",
        "send_window",
    ),
    ("kampanya.csv", GOOD, {"template": "x", "weight": "nan"}, 422, "invalid_options", "weight"),
    ("kampanya.csv", GOOD, {"template": "x", "text_column": "ad"}, 422, "invalid_options", "text_column"),
    ("kampanya.csv", GOOD, {"template": "x", "encoding": "klingon"}, 422, "invalid_options", "encoding"),
    (
        "kampanya.csv",
        GOOD,
        {"template": "x", "webhook_url": "http://127.0.0.1:6379/"},
        422,
        "webhook_not_allowed",
        "webhook_url",
    ),
    (
        "kampanya.csv",
        GOOD,
        {"template": "x", "webhook_url": "http://169.254.169.254/latest/meta-data/"},
        422,
        "webhook_not_allowed",
        "webhook_url",
    ),
    (
        "kampanya.csv",
        GOOD,
        {"template": "x", "webhook_url": "http://[::ffff:10.0.0.1]/h"},
        422,
        "webhook_not_allowed",
        "webhook_url",
    ),
    ("kampanya.csv", GOOD, {"template": "x", "operators": "acme"}, 422, "unknown_operator", "operators"),
    (
        "kampanya.csv",
        b"telefon\n" + b"1" * (MAX_BYTES + 10),
        {"template": "x"},
        413,
        "file_too_large",
        "file",
    ),
]

FILE_CODES = {
    "empty_file",
    "no_rows",
    "not_text",
    "encrypted_file",
    "corrupt_file",
    "sheet_not_found",
    "no_phone_column",
    "too_many_rows",
    "unsupported_format",
    "format_mismatch",
    "file_too_large",
}


def _assert_refused(
    hostile: Hostile,
    response: httpx.Response,
    status: int,
    code: str,
    field: str | None,
    before: tuple[int, list[str]],
    *,
    quotes_path: bool = False,
) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body.get("field") == field, body
    assert body["message"] and len(response.content) < 2000, len(response.content)
    if not quotes_path:  # a URI's error quotes the URI the user sent; nothing else names our paths
        assert str(hostile.workdir) not in body["message"] and "upload." not in body["message"], body
    assert hostile.leftovers() == before  # no job record, no job directory
    return body


@pytest.mark.parametrize(
    ("name", "content", "options", "status", "code", "field"),
    UPLOADS,
    ids=[f"{u[4]}-{i}" for i, u in enumerate(UPLOADS)],
)
def test_a_bad_upload_is_refused_before_202_and_leaves_nothing(
    hostile: Hostile,
    name: str,
    content: bytes,
    options: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    before = hostile.leftovers()
    with hostile.client() as http:
        response = http.post("/v1/jobs", files={"file": (name, content)}, data=options)
    body = _assert_refused(hostile, response, status, code, field, before)
    if code in FILE_CODES - {"file_too_large"} and code != "empty_file":
        assert name in body["message"], body  # the user's file, by the name they gave it


def test_an_oversize_upload_without_content_length_is_refused(hostile: Hostile) -> None:
    before = hostile.leftovers()
    boundary = "b0undary"

    def chunks() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="template"\r\n\r\nx\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\ntelefon\n"
        ).encode()
        for _ in range(MAX_BYTES // (1 << 20) + 2):
            yield b"+905321111111\n" * (1 << 16)
        yield f"\r\n--{boundary}--\r\n".encode()

    with hostile.client() as http:
        response = http.post(
            "/v1/jobs",
            content=chunks(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    _assert_refused(hostile, response, 413, "file_too_large", "file", before)


def test_a_truncated_multipart_body_is_called_truncated(hostile: Hostile) -> None:
    before = hostile.leftovers()
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="template"\r\n\r\nx\r\n'
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="k.csv"\r\n\r\n'
        b"telefon\n+905321111111\n"
    )
    with hostile.client() as http:
        response = http.post(
            "/v1/jobs", content=body, headers={"Content-Type": "multipart/form-data; boundary=xyz"}
        )
    _assert_refused(hostile, response, 400, "truncated_upload", "file", before)


@pytest.mark.parametrize(
    ("uri", "status", "code"),
    [
        ("local:///etc/passwd", 403, "uri_not_allowed"),
        ("LOCAL:///etc/passwd", 403, "uri_not_allowed"),
        ("Local://{root}/../../../etc/passwd", 403, "uri_not_allowed"),
        ("file:///etc/passwd", 403, "uri_not_allowed"),
        ("FiLe:///etc/passwd", 403, "uri_not_allowed"),
        ("/etc/passwd", 403, "uri_not_allowed"),
        ("{root}/../../etc/passwd", 403, "uri_not_allowed"),
        ("{root}/link.csv", 403, "uri_not_allowed"),
        ("s3://bucket/x.csv?endpoint_override=127.0.0.1:{port}&scheme=http", 403, "uri_not_allowed"),
        ("S3://bucket/x.csv", 403, "uri_not_allowed"),
        ("gs://bucket/x.csv?endpoint_override=127.0.0.1:1", 403, "uri_not_allowed"),
        ("hdfs://127.0.0.1:{port}/x.csv", 403, "uri_not_allowed"),
        ("http://127.0.0.1:{port}/x.csv", 403, "uri_not_allowed"),
        ("mock:///x.csv", 403, "uri_not_allowed"),
        ("{root}/none.csv", 422, "uri_not_found"),
        ("{root}/fifo.csv", 422, "uri_not_found"),
        ("/" + "a" * 60_000, 403, "uri_not_allowed"),
    ],
)
def test_a_uri_outside_the_policy_is_refused_and_nothing_is_read_or_called(
    hostile: Hostile, uri: str, status: int, code: str
) -> None:
    import socket

    root = hostile.uploads
    if not (root / "link.csv").exists():
        (root / "link.csv").symlink_to("/etc/passwd")
        os.mkfifo(root / "fifo.csv")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    before = hostile.leftovers()
    try:
        with hostile.client() as http:
            response = http.post(
                "/v1/jobs",
                json={
                    "uri": uri.format(root=root, port=listener.getsockname()[1]),
                    "template": "x",
                    "dry_run": True,
                    "phone_column": "root:x:0:0:root:/root:/bin/bash",
                },
            )
        _assert_refused(hostile, response, status, code, "uri", before, quotes_path=True)
        assert "root:x:0:0" not in response.json()["message"]
        with pytest.raises(TimeoutError):
            listener.accept()  # the API connected nowhere
    finally:
        listener.close()


def test_a_huge_header_or_job_id_gets_a_short_answer(hostile: Hostile) -> None:
    header = ",".join(f"k{i}" for i in range(100_000)).encode()
    before = hostile.leftovers()
    with hostile.client() as http:
        wide = http.post(
            "/v1/jobs",
            files={"file": ("genis.csv", header + b"\n" + b"1," * 99_999 + b"1\n")},
            data={"template": "x"},
        )
        long_id = http.get("/v1/jobs/" + "j" * 60_000)
        long_pause = http.post("/v1/jobs/" + "j" * 60_000 + "/pause")
    body = _assert_refused(hostile, wide, 422, "no_phone_column", "phone_column", before)
    assert "more" in body["message"]
    for response in (long_id, long_pause):
        assert response.status_code in (404, 414, 431) and len(response.content) < 1000, response.status_code


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "-1e999", "", "x", "9" * 400])
def test_the_paging_cursor_refuses_non_numbers(hostile: Hostile, value: str) -> None:
    with hostile.client() as http:
        response = http.get("/v1/jobs", params={"before": value})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request" and response.json()["field"] == "before"


def test_every_route_survives_hostile_query_and_path_values(hostile: Hostile) -> None:
    """Every operation in the schema, each of its query parameters set to each hostile value, and its
    path parameters too: never a 5xx."""
    with hostile.client() as http:
        schema = http.get("/openapi.json").json()
        values = [
            "nan",
            "inf",
            "-inf",
            "1e309",
            "-1",
            "0",
            "9" * 400,
            "",
            "%00",
            "\x7f",
            "{ad.__class__}",
            "../../etc/passwd",
            "ğüşıöç",
            "a" * 5000,
        ]
        calls = 0
        for path, item in schema["paths"].items():
            for method, operation in item.items():
                params = operation.get("parameters", [])
                query = [p["name"] for p in params if p["in"] == "query"]
                for value in values:
                    url = path
                    for p in params:
                        if p["in"] == "path":
                            url = url.replace("{" + p["name"] + "}", quote(value, safe="") or "x")
                    for name in query or [None]:
                        response = http.request(
                            method.upper(), url, params={name: value} if name else None, timeout=30
                        )
                        calls += 1
                        assert response.status_code < 500, (method, url, name, value, response.text[:300])
                        if url.endswith("/events") and response.status_code == 200:
                            response.close()
    assert calls > 200


def test_a_utf16_csv_from_excel_is_read(hostile: Hostile) -> None:
    text = "telefon\tad\r\n+905321110001\tŞule\r\n+905321110002\tİlker\r\n"
    content = text.encode("utf-16")  # with its BOM, as Excel's "Unicode Text" saves it
    with hostile.client() as http:
        created = http.post(
            "/v1/jobs",
            files={"file": ("unicode.txt", content)},
            data={"template": TEMPLATE, "dry_run": "true"},
        )
        assert created.status_code == 202, created.text
        view = wait_for(
            lambda: (v := http.get(f"/v1/jobs/{created.json()['id']}").json())["state"] == "done" and v,
            timeout=60,
            what="the dry run",
        )
    assert view["counts"]["accepted"] == 2 and view["counts"]["rejected"] == 0


def test_rejected_rows_come_back_with_formulas_quoted_and_the_upload_is_deleted(hostile: Hostile) -> None:
    rows = [
        ["telefon", "ad"],
        ['=HYPERLINK("http://evil","tıkla")', "a"],
        ["+cmd|' /C calc'!A0", "b"],
        ["@SUM(1)", "c"],
        ["-1+2", "d"],
        ["+905321112233", "=1+1"],
        ["12345", "+905321112233"],
    ]
    buffer = io.StringIO()
    csvmod.writer(buffer).writerows(rows)
    content = buffer.getvalue().encode()
    with hostile.client() as http:
        created = http.post(
            "/v1/jobs", files={"file": ("f.csv", content)}, data={"template": TEMPLATE, "dry_run": "true"}
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        wait_for(lambda: http.get(f"/v1/jobs/{job_id}").json()["state"] == "done", timeout=60, what="dry run")
        csv_text = http.get(f"/v1/jobs/{job_id}/rejected").text
        parquet = http.get(f"/v1/jobs/{job_id}/rejected", params={"format": "parquet"}).content
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = list(csvmod.DictReader(io.StringIO(csv_text)))
    assert [r["telefon"] for r in table] == [
        '\'=HYPERLINK("http://evil","tıkla")',
        "'+cmd|' /C calc'!A0",
        "'@SUM(1)",
        "'-1+2",
        "12345",
    ]
    assert table[-1]["ad"] == "+905321112233"  # a number stays a number
    raw = pq.read_table(pa.BufferReader(parquet)).column("telefon").to_pylist()
    assert raw[0] == '=HYPERLINK("http://evil","tıkla")'  # Parquet stays raw
    record = JobStore(hostile.redis).record(job_id)
    folder = Path(record.dir)
    assert record.upload == "upload.csv" and folder.is_dir()
    assert not (folder / "upload.csv").exists() and (folder / "accepted.parquet").exists()


def test_a_job_that_failed_before_preparing_says_it_has_no_report(hostile: Hostile) -> None:
    store = JobStore(hostile.redis)
    job_id = "20261202-" + uuid.uuid4().hex[:10]
    directory = hostile.workdir / "jobs" / job_id
    store.create(job_id, options=JobOptions(template="x"), source="test", directory=directory)
    store.fail(job_id, code="internal_error", message="boom")
    try:
        with hostile.client() as http:
            report = http.get(f"/v1/jobs/{job_id}/report")
            rejected = http.get(f"/v1/jobs/{job_id}/rejected")
        for response in (report, rejected):
            assert response.status_code == 409 and response.json()["code"] == "no_report", response.text
            assert (
                "failed" in response.json()["message"]
                and "not prepared yet" not in response.json()["message"]
            )
    finally:
        store.delete(job_id)


def test_only_the_configured_endpoints_are_public(hostile: Hostile) -> None:
    with hostile.client(token=None) as bare, hostile.client() as keyed:
        assert bare.get("/healthz").status_code == 200
        assert bare.get("/readyz").status_code in (200, 503)
        assert bare.get("/metrics").status_code == 401 and keyed.get("/metrics").status_code == 200
        assert bare.get("/openapi.json").status_code == 401
        assert keyed.get("/openapi.json").json()["info"]["title"] == "Ulak"
        assert bare.get("/docs").status_code == 404 and keyed.get("/docs").status_code == 404


def test_purge_deletes_jobs_past_their_retention_with_their_files(hostile: Hostile) -> None:
    with hostile.client() as http:
        created = http.post(
            "/v1/jobs", files={"file": ("p.csv", GOOD)}, data={"template": "x", "dry_run": "true"}
        )
        job_id = created.json()["id"]
        wait_for(lambda: http.get(f"/v1/jobs/{job_id}").json()["state"] == "done", timeout=60, what="dry run")
        directory = Path(JobStore(hostile.redis).record(job_id).dir)
        assert job_id not in http.post("/v1/jobs/purge", json={}).json()["purged"]  # retention_days: 90
        second = 1 / 86400
        ended = JobStore(hostile.redis).record(job_id).entered_at(JobState.DONE)
        assert ended is not None
        wait_for(lambda: time.time() > ended + 2, timeout=10, what="two seconds since the job ended")
        dry = http.post("/v1/jobs/purge", json={"older_than_days": second, "dry_run": True}).json()
        assert dry["dry_run"] and job_id in dry["purged"] and directory.exists()
        assert job_id in http.post("/v1/jobs/purge", json={"older_than_days": second}).json()["purged"]
        assert http.get(f"/v1/jobs/{job_id}").status_code == 404
        assert http.post("/v1/jobs/purge", json={"older_than_days": "nan"}).status_code == 422
    assert not directory.exists()
    assert not hostile.redis.keys(f"ulak:*{job_id}*")
