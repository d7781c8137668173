"""The control plane over HTTP: a real uvicorn process, real Ray, Redis and the simulator over TCP.

One stack serves the module (its own Redis, simulator and Ray namespace); each test uses its own block
of phone numbers, so the simulator's record can be read per test.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from tests.dashboard import mismatches
from tests.helpers import SimProcess, wait_for
from tests.integration.stack import (
    TEMPLATE,
    Stack,
    assert_adds_up,
    assert_done,
    campaign_csv,
    no_duplicates,
    post_job,
    running_stack,
    wait_state,
)
from ulak import keys


@pytest.fixture(scope="module")
def stack(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("api")
    sim = SimProcess(workdir, "--account", "test:secret", "--seed", "11", "--dlr-delay", "0.05:0.3")
    with running_stack(workdir, sim, tps=400, name="api") as running:
        yield running


def test_full_lifecycle_report_and_events(stack: Stack) -> None:
    prefix = "905321"
    path = stack.workdir / "lifecycle.csv"
    expected = campaign_csv(path, prefix, 1500, bad_every=100, long_every=50)
    with stack.client() as http:
        created = post_job(http, path, template=TEMPLATE, name="lifecycle")
        assert created.status_code == 202, created.text
        job = created.json()
        assert job["links"]["report"] == f"/v1/jobs/{job['id']}/report"
        with http.stream("GET", f"/v1/jobs/{job['id']}/events", params={"interval": 0.5}) as events:
            kinds = []
            for line in events.iter_lines():
                if line.startswith("event: "):
                    kinds.append(line.removeprefix("event: "))
                elif line.startswith("data: "):
                    last = json.loads(line.removeprefix("data: "))
                    assert_adds_up(last)
        assert kinds[-1] == "end" and set(kinds[:-1]) == {"progress"} and len(kinds) > 1
        view = http.get(f"/v1/jobs/{job['id']}").json()
        assert view == last | {"rates": view["rates"]} or view["state"] == "done"
        report = http.get(f"/v1/jobs/{job['id']}/report")
        rejected = http.get(f"/v1/jobs/{job['id']}/rejected")
        listed = http.get("/v1/jobs", params={"state": "done"}).json()
    assert_done(view, expected)
    c = view["counts"]
    assert c["submitted"] == c["acked"] == expected["accepted"]
    assert view["receipts"]["awaiting"] == 0
    assert view["rejected_reasons"] == {"invalid_number": expected["rejected"]}
    assert job["id"] in [j["id"] for j in listed["jobs"]]

    records = stack.records(prefix)
    no_duplicates(records)
    assert len(records) == view["parts"]["acked"] == view["parts"]["total"]
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert len(rows) == expected["accepted"]
    assert {r["status"] for r in rows} == {"acked"}
    # The report's message ids are exactly the simulator's, number by number.
    sim_ids: dict[str, list[str]] = {}
    for r in records:
        sim_ids.setdefault(r["dst"], []).append(r["message_id"])
    for r in rows:
        assert sorted(r["message_ids"].split()) == sorted(sim_ids[r["msisdn"]]), r
        assert int(r["parts"]) == len(sim_ids[r["msisdn"]])
    assert Counter(r["receipt"] for r in rows) == Counter(
        {k: v for k, v in view["receipts"].items() if k not in ("awaiting", "received", "duplicates") and v}
    )
    bad = list(csv.DictReader(io.StringIO(rejected.text)))
    assert len(bad) == expected["rejected"]
    assert {b["reason"] for b in bad} == {"invalid_number"} and bad[0]["telefon"] == "12345"


def test_pause_resume_and_cancel_reach_the_binds(stack: Stack) -> None:
    prefix = "905331"
    path = stack.workdir / "steer.csv"
    campaign_csv(path, prefix, 6000)
    with stack.client() as http:
        job_id = post_job(http, path, template=TEMPLATE).json()["id"]
        wait_state(http, job_id, "sending")
        wait_for(lambda: len(stack.records(prefix)) > 200, timeout=30, what="sending to start")
        paused = http.post(f"/v1/jobs/{job_id}/pause")
        assert paused.status_code == 200 and paused.json()["state"] == "paused"

        # Once what was in flight is answered and the books match the SMSC's record, nothing more
        # may go out while the job is paused.
        def settled() -> dict[str, Any] | None:
            view: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
            c = view["counts"]
            return view if c["in_flight"] == 0 and c["submitted"] == len(stack.records(prefix)) else None

        before = wait_for(settled, timeout=15, interval=0.2, what="the paused job's parts to be answered")
        held = len(stack.records(prefix))
        time.sleep(1.0)  # asserting an absence: nothing may be sent while paused
        assert len(stack.records(prefix)) == held == before["counts"]["submitted"]
        assert held < 6000 and before["counts"]["pending"] > 0
        assert http.post(f"/v1/jobs/{job_id}/pause").status_code == 409

        assert http.post(f"/v1/jobs/{job_id}/resume").status_code == 200
        wait_for(lambda: len(stack.records(prefix)) > held + 200, timeout=30, what="sending to resume")
        cancelled = http.post(f"/v1/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200, (cancelled.text, http.get(f"/v1/jobs/{job_id}").text)
        assert cancelled.json()["state"] in ("cancelling", "cancelled")
        view = wait_state(http, job_id, "cancelled", timeout=30)
        report = list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/report").text)))
        again = http.post(f"/v1/jobs/{job_id}/resume")
    assert_adds_up(view)
    c = view["counts"]
    assert c["cancelled"] > 0 and c["pending"] == 0 and c["in_flight"] == 0
    assert c["cancelled"] + c["submitted"] == 6000
    records = stack.records(prefix)
    no_duplicates(records)
    assert len(records) == c["submitted"] == c["acked"]
    assert Counter(r["status"] for r in report) == {"acked": c["acked"], "cancelled": c["cancelled"]}
    sent = {r["msisdn"] for r in report if r["status"] == "acked"}
    assert sent == {r["dst"] for r in records}
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"


def test_paused_with_everything_handed_to_the_binds_then_resumed_sends_every_row_once(
    stack: Stack,
) -> None:
    # 3,000 one-part rows fit in the binds' queues at once, so when the pause comes the runner has
    # handed them all over: what the pause takes back must be sent after the resume, not dropped,
    # and the job must not call itself draining while the binds still have its parts queued.
    prefix = "905332"
    path = stack.workdir / "resume.csv"
    campaign_csv(path, prefix, 3000)
    with stack.client() as http:
        job_id = post_job(http, path, template=TEMPLATE).json()["id"]
        wait_for(lambda: len(stack.records(prefix)) > 200, timeout=30, what="sending to start")
        paused = http.post(f"/v1/jobs/{job_id}/pause")
        assert paused.status_code == 200, paused.text
        wait_state(http, job_id, "paused")
        wait_for(
            lambda: http.get(f"/v1/jobs/{job_id}").json()["counts"]["in_flight"] == 0,
            timeout=15,
            what="the paused job's parts to be answered",
        )
        held = len(stack.records(prefix))
        assert http.post(f"/v1/jobs/{job_id}/resume").status_code == 200
        wait_for(lambda: len(stack.records(prefix)) > held + 200, timeout=30, what="sending to resume")
        assert http.get(f"/v1/jobs/{job_id}").json()["state"] == "sending"  # the rest is still queued
        view = wait_state(http, job_id, "done", timeout=120)
    assert_adds_up(view)
    c = view["counts"]
    assert c["accepted"] == c["submitted"] == c["acked"] == 3000 and c["pending"] == 0
    records = stack.records(prefix)
    no_duplicates(records)
    assert len(records) == 3000
    # every entry into a state is kept: both stretches of sending, and the pause between them
    states = [h["state"] for h in view["history"]]
    first = states.index("sending")
    assert states[first:] == ["sending", "paused", "scheduled", "sending", "draining", "done"], states
    assert view["sending_seconds"] > 0


def test_idempotent_post_returns_the_same_job(stack: Stack) -> None:
    path = stack.workdir / "idem.csv"
    campaign_csv(path, "905322", 20)
    with stack.client() as http:
        headers = {"Idempotency-Key": "order-42"}
        with path.open("rb") as f:
            first = http.post(
                "/v1/jobs", files={"file": ("idem.csv", f)}, data={"template": "x {ad}"}, headers=headers
            )
        with path.open("rb") as f:
            second = http.post(
                "/v1/jobs", files={"file": ("idem.csv", f)}, data={"template": "x {ad}"}, headers=headers
            )
        assert first.status_code == second.status_code == 202
        assert first.json()["id"] == second.json()["id"]
        wait_state(http, first.json()["id"], "done")
        listed = http.get("/v1/jobs", params={"limit": 500}).json()["jobs"]
    assert sum(1 for j in listed if j["options"]["template"] == "x {ad}") == 1
    assert len(stack.records("905322")) == 20


def test_an_idempotency_key_reused_by_another_request_is_refused_and_sends_nothing(stack: Stack) -> None:
    """Stripe's rule: the same key with other options, or another file, is the client's bug: 422
    naming the job the key made, and nothing new is sent. The same request again gets that job."""
    path, other = stack.workdir / "idem2.csv", stack.workdir / "idem3.csv"
    campaign_csv(path, "905338", 5)
    campaign_csv(other, "905339", 5)
    with stack.client() as http:
        headers = {"Idempotency-Key": "order-43"}
        first = post_job(http, path, template="y {ad}", headers=headers)
        assert first.status_code == 202, first.text
        job_id = first.json()["id"]
        for file, template in ((path, "z {ad}"), (other, "y {ad}")):
            refused = post_job(http, file, template=template, headers=headers)
            assert refused.status_code == 422, refused.text
            body = refused.json()
            assert body["code"] == "idempotency_key_reused" and job_id in body["message"]
        again = post_job(http, path, template="y {ad}", headers=headers)
        assert (again.status_code, again.json()["id"]) == (202, job_id)
        wait_state(http, job_id, "done")
        listed = http.get("/v1/jobs", params={"limit": 500}).json()["jobs"]
    assert [j["id"] for j in listed if j["options"]["template"] in ("y {ad}", "z {ad}")] == [job_id]
    assert len(stack.records("905338")) == 5 and stack.records("905339") == []


def test_auth_failures(stack: Stack) -> None:
    bare = httpx.Client(base_url=stack.api.url, timeout=10)
    missing = bare.get("/v1/jobs")
    wrong = bare.get("/v1/jobs", headers={"Authorization": "Bearer ulak_nope"})
    with stack.client(stack.read_token) as reader:
        can_read = reader.get("/v1/jobs")
        cannot_write = reader.post("/v1/jobs", json={"uri": "x.csv", "template": "x"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["code"] == "unauthorized" and "ulak keys create" in missing.json()["message"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert can_read.status_code == 200
    assert cannot_write.status_code == 403 and cannot_write.json()["code"] == "forbidden"
    assert bare.get("/healthz").status_code == 200  # probes need no key


@pytest.mark.parametrize(
    ("name", "content", "options", "status", "code", "field"),
    [
        ("a.csv", b"", {"template": "x"}, 422, "empty_file", None),
        ("a.json", b"telefon\n905321\n", {"template": "x"}, 415, "unsupported_format", "file"),
        ("a.xlsx", b"telefon\n905321\n", {"template": "x"}, 415, "format_mismatch", "file"),
        (
            "a.csv",
            b"telefon,ad\n+905321111111,A\n",
            {"template": "Merhaba {soyad}"},
            422,
            "template_error",
            None,
        ),
        ("a.csv", b"ad\nA\n", {"template": "x"}, 422, "no_phone_column", None),
        (
            "a.csv",
            b"telefon,ad\n+905321111111,A\n",
            {"template": "x", "operators": "acme"},
            422,
            "unknown_operator",
            "operators",
        ),
        (
            "a.csv",
            b"telefon,ad\n+905321111111,A\n",
            {"template": "x", "colour": "red"},
            422,
            "invalid_options",
            "colour",
        ),
        ("a.csv", b"telefon,ad\n+905321111111,A\n", {}, 422, "invalid_options", None),
        (
            "a.csv",
            b"telefon,ad\n+905321111111,A\n",
            {"template": "x", "send_window": "9-5"},
            422,
            "invalid_options",
            "send_window",
        ),
        (
            "a.csv",
            b"telefon\n" + b"+905321111111\n" * 160_000,
            {"template": "x"},
            413,
            "file_too_large",
            "file",
        ),
    ],
)
def test_upload_errors_are_json_with_a_code(
    stack: Stack,
    name: str,
    content: bytes,
    options: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    with stack.client() as http:
        before = len(http.get("/v1/jobs", params={"limit": 500}).json()["jobs"])
        response = http.post("/v1/jobs", files={"file": (name, content)}, data=options)
        after = len(http.get("/v1/jobs", params={"limit": 500}).json()["jobs"])
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"]
    if field is not None:
        assert body["field"] == field
    assert after == before  # a refused upload starts nothing


def test_other_request_errors(stack: Stack) -> None:
    with stack.client() as http:
        missing_file = http.post("/v1/jobs", data={"template": "x"}, files={"other": ("a.csv", b"x")})
        not_found = http.get("/v1/jobs/nope")
        no_pause = http.post("/v1/jobs/nope/pause")
        wrong_type = http.post("/v1/jobs", content=b"telefon\n", headers={"Content-Type": "text/csv"})
        bad_json = http.post("/v1/jobs", content=b"{", headers={"Content-Type": "application/json"})
        outside = http.post("/v1/jobs", json={"uri": "/etc/passwd", "template": "x"})
        bad_state = http.get("/v1/jobs", params={"state": "flying"})
    assert (missing_file.status_code, missing_file.json()["code"]) == (422, "missing_file")
    assert (not_found.status_code, not_found.json()["code"]) == (404, "job_not_found")
    assert (no_pause.status_code, no_pause.json()["code"]) == (404, "job_not_found")
    assert (wrong_type.status_code, wrong_type.json()["code"]) == (415, "unsupported_media_type")
    assert (bad_json.status_code, bad_json.json()["code"]) == (400, "bad_json")
    assert (outside.status_code, outside.json()["code"]) == (403, "uri_not_allowed")
    assert (bad_state.status_code, bad_state.json()["code"], bad_state.json()["field"]) == (
        422,
        "invalid_request",
        "state",
    )


def test_job_from_a_uri_under_the_root_and_parquet_report(stack: Stack) -> None:
    path = stack.workdir / "uploads" / "from-uri.csv"
    campaign_csv(path, "905323", 30)
    with stack.client() as http:
        created = http.post(
            "/v1/jobs", json={"uri": str(path), "template": "Selam {ad}", "sender": "ULAKTEST"}
        )
        assert created.status_code == 202, created.text
        view = wait_state(http, created.json()["id"], "done")
        report = pq.read_table(
            pa.BufferReader(http.get(f"{created.json()['links']['report']}?format=parquet").content)
        )
    assert view["counts"]["acked"] == 30 and report.num_rows == 30
    assert report.column("status").to_pylist() == ["acked"] * 30
    records = stack.records("905323")
    assert {r["src"] for r in records} == {"ULAKTEST"}


def test_operators_readyz_and_metrics(stack: Stack) -> None:
    path = stack.workdir / "metrics.csv"
    campaign_csv(path, "905329", 20)
    with stack.client() as http:
        wait_state(http, post_job(http, path, template="x {ad}").json()["id"], "done")  # some receipts
        operators = http.get("/v1/operators").json()
        ready = http.get("/readyz")
        metrics = http.get("/metrics").text
    assert [(o["name"], [b["bind"] for b in o["binds"]]) for o in operators] == [
        ("tcell", ["t1", "t2"]),
        ("voda", ["v1"]),
    ]
    assert all(b["state"] == "bound" and b["window"] == 20 for o in operators for b in o["binds"])
    # Each bind's learned rate, never above what was declared (the simulator here never said 0x58).
    assert all(0 < b["learned_tps"] <= (b["tps"] or o["tps"]) for o in operators for b in o["binds"])
    assert [(o["state"], o["reason"]) for o in operators] == [("up", ""), ("up", "")]
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"
    lines = {k: float(v) for k, v in (x.rsplit(" ", 1) for x in metrics.splitlines() if x[:1] != "#")}
    assert lines['ulak_bind_up{bind="t1",operator="tcell"}'] == 1
    assert lines['ulak_bind_state{bind="t1",operator="tcell",state="bound"}'] == 1
    assert lines['ulak_bind_window{bind="v1",operator="voda"}'] == 20
    assert (
        lines['ulak_bind_learned_tps{bind="v1",operator="voda"}'] == operators[1]["binds"][0]["learned_tps"]
    )
    assert lines['ulak_jobs{state="done"}'] >= 1
    assert lines['ulak_throttle_rate{operator="tcell"}'] == 400
    assert lines['ulak_throttle_leases_total{operator="tcell"}'] > 0
    assert sum(v for k, v in lines.items() if k.startswith("ulak_bind_submitted_total")) >= 20
    assert lines["ulak_ingest_rows_total"] >= 20 and lines["ulak_ingest_seconds_total"] > 0
    assert mismatches(metrics) == []  # every panel of the Grafana dashboard reads what is exported
    count = lines["ulak_receipt_latency_seconds_count"]
    assert count > 0 and float(lines['ulak_receipt_latency_seconds_bucket{le="+Inf"}']) == count
    assert float(lines['ulak_receipt_latency_seconds_bucket{le="5"}']) == count  # the simulator answers fast


def _job_under_way(stack: Stack, http: httpx.Client, prefix: str, **campaign: int) -> str:
    """A 4,000-row job for numbers ``+<prefix>…``, posted and sending: the SMSC has 300 of its parts."""
    path = stack.workdir / f"{prefix}.csv"
    campaign_csv(path, prefix, 4000, **campaign)
    job_id: str = post_job(http, path, template=TEMPLATE).json()["id"]
    wait_for(lambda: len(stack.records(prefix)) > 300, timeout=60, what="sending to start")
    return job_id


def test_control_plane_restart_mid_job(stack: Stack) -> None:
    prefix = "905334"
    with stack.client() as http:
        job_id = _job_under_way(stack, http, prefix)
    stack.restart_api(kill=True)
    with stack.client() as http:
        mid = http.get(f"/v1/jobs/{job_id}").json()
        assert mid["state"] in ("sending", "draining", "done")
        view = wait_state(http, job_id, "done")
    assert_adds_up(view)
    assert view["counts"]["acked"] == 4000
    records = stack.records(prefix)
    no_duplicates(records)
    assert len(records) == 4000


def test_job_actor_killed_mid_job_resumes_without_duplicates(stack: Stack) -> None:
    prefix = "905425"
    with stack.client() as http:
        job_id = _job_under_way(stack, http, prefix, long_every=7)
        actor = ray.get_actor(f"job:{job_id}", namespace=stack.namespace)
        ray.kill(actor, no_restart=False)  # the process dies; Ray starts a new one, which resumes
        view = wait_state(http, job_id, "done")
    assert_adds_up(view)
    assert view["counts"]["acked"] == 4000 and view["counts"]["unknown"] == 0
    records = stack.records(prefix)
    no_duplicates(records)
    assert len(records) == view["parts"]["total"]


def test_a_bind_that_dies_is_replaced_and_its_job_finishes_without_duplicates(stack: Stack) -> None:
    prefix = "905336"
    with stack.client() as http:
        job_id = _job_under_way(stack, http, prefix)
        t2 = ray.get_actor("bind:tcell:t2", namespace=stack.namespace)
        # The pool finds a dead bind's send record registered under the bind's name.
        record = ray.get(t2.describe.remote())["send_record"]
        assert record == keys.bind_sends("tcell", "t2", t2._actor_id.hex(), ledger="tcell")
        ray.kill(t2, no_restart=True)
        view = wait_state(http, job_id, "done", "failed")
        assert view["state"] == "done", view
        tcell = http.get("/v1/operators").json()[0]
    assert_adds_up(view)
    c = view["counts"]
    assert c["pending"] == 0 and c["acked"] + c["unknown"] == c["accepted"] == 4000
    records = stack.records(prefix)
    no_duplicates(records)
    assert c["acked"] <= len(records) <= c["acked"] + c["unknown"]  # what may have gone is unknown
    assert not stack.redis.exists(record)  # read, then deleted
    # The runner put a new bind in its place, under the same name.
    assert [b["state"] for b in tcell["binds"]] == ["bound", "bound"], tcell


def test_cli_submits_follows_and_downloads(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.cli.main import main

    path = tmp_path / "cli.csv"
    campaign_csv(path, "905324", 40, bad_every=10)
    auth = ["--api", stack.api.url, "--key", stack.token]
    assert main(["submit", str(path), "--template", "Merhaba {ad}", "--name", "cli", *auth]) == 0
    out = capsys.readouterr().out
    job_id = out.split("job ")[1].split()[0]
    assert "done" in out and "rows = accepted + refused: 40 = 36 + 4" in out
    assert main(["status", job_id, "--json", *auth]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["acked"] == 36
    assert main(["report", job_id, "-o", str(tmp_path / "r.parquet"), *auth]) == 0
    assert main(["report", job_id, "-o", str(tmp_path / "bad.csv"), "--rejected", *auth]) == 0
    assert pq.read_table(tmp_path / "r.parquet").num_rows == 36
    assert len((tmp_path / "bad.csv").read_text().splitlines()) == 1 + 4
    assert main(["pause", job_id, *auth]) == 1  # done: nothing to pause
    assert "invalid_state" in capsys.readouterr().out
    assert main(["status", job_id, "--api", stack.api.url, "--key", "ulak_wrong"]) == 1
    assert "unauthorized" in capsys.readouterr().out


def test_fuzzing_the_openapi_schema_finds_no_server_error(stack: Stack) -> None:
    """Schemathesis generates requests from the served OpenAPI schema (valid and invalid ones);
    none may get a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{stack.api.url}/openapi.json")
    headers = {"Authorization": f"Bearer {stack.token}"}
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            if case.path.endswith("/events"):
                case.query = {**(case.query or {}), "interval": 0.2}
            response = case.call(base_url=stack.api.url, headers=headers, timeout=30)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        check()
    assert not failures, failures
    assert sum(statuses.values()) > 100 and len(statuses) >= 3, statuses  # it did exercise the API


def test_receipt_webhook_is_signed_complete_and_retried(stack: Stack) -> None:
    import http.server
    import threading

    from cluster.webhooks import verify

    posts: list[tuple[dict[str, str], bytes]] = []
    refused = threading.Event()

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if not refused.is_set():  # the first call fails: the batch must come again
                refused.set()
                self.send_response(503)
            else:
                posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prefix = "905326"
    path = stack.workdir / "hook.csv"
    campaign_csv(path, prefix, 300, long_every=20)
    try:
        with stack.client() as http_client:
            created = post_job(
                http_client,
                path,
                template="Selam {ad}",
                webhook_url=f"http://127.0.0.1:{server.server_port}/hook",
            ).json()
            secret = created["webhook_secret"]
            view = wait_state(http_client, created["id"], "done")

        def events() -> list[dict[str, Any]]:
            seen: dict[str, list[dict[str, Any]]] = {}
            for _, body in posts:
                payload = json.loads(body)
                seen[payload["delivery"]] = payload["events"]
            return [e for batch in seen.values() for e in batch]

        wait_for(lambda: {"type": "state", "state": "done"} in events(), timeout=30, what="the final event")
    finally:
        server.shutdown()
    assert refused.is_set() and secret
    for headers, body in posts:
        assert verify(secret, headers["x-ulak-timestamp"], body, headers["x-ulak-signature"])
        assert json.loads(body)["job_id"] == created["id"]
    assert not verify("wrong", posts[0][0]["x-ulak-timestamp"], posts[0][1], posts[0][0]["x-ulak-signature"])
    receipts = [e for e in events() if e["type"] == "receipt"]
    assert sorted(e["row"] for e in receipts) == list(range(1, 301))  # each row's outcome exactly once
    outcomes = Counter(e["outcome"] for e in receipts)
    assert outcomes == Counter(
        {
            k: v
            for k, v in view["receipts"].items()
            if k in outcomes or (k not in ("awaiting", "received", "duplicates") and v)
        }
    )


def test_two_jobs_share_the_binds_by_weight(stack: Stack) -> None:
    heavy, light = stack.workdir / "heavy.csv", stack.workdir / "light.csv"
    campaign_csv(heavy, "905327", 2000)
    campaign_csv(light, "905328", 2000)
    with stack.client() as http:
        a = post_job(http, heavy, template="A {ad}", weight=3).json()["id"]
        b = post_job(http, light, template="B {ad}", weight=1).json()["id"]
        wait_state(http, a, "done")
        wait_state(http, b, "done")
    # Each bind serves its own queue: measure per connection, while both jobs had parts at that bind.
    records = sorted(stack.records("905327") + stack.records("905328"), key=lambda r: r["t"])
    both = []
    for conn in {r["conn"] for r in records}:
        mine = [r for r in records if r["conn"] == conn]
        times = [[r["t"] for r in mine if r["dst"].startswith(p)] for p in ("905327", "905328")]
        if all(times):
            start, end = max(t[0] for t in times), min(t[-1] for t in times)
            both += [r for r in mine if start <= r["t"] <= end]
    share = sum(r["dst"].startswith("905327") for r in both) / len(both)
    assert len(both) > 300 and 0.65 < share < 0.85, (len(both), share)  # weight 3 : 1 → 0.75
