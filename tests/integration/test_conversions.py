"""Conversions over real HTTP: reported by link code, by job and number, or by SMSC message id; counted
once per event id; attributed to the job by click or by delivery only within the job's windows; the
figures in the job's view and report are exactly what was reported."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from cluster.engagement import events
from tests.helpers import ApiProcess, SimProcess, wait_for
from tests.integration.stack import campaign_csv, post_job, running_stack, wait_state
from ulak import keys
from ulak.jobfiles import JobFiles
from ulak.redis_server import free_port

PHONE = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36"
CLICK_WINDOW = 40.0  # seconds: the job's windows, small so that times just ahead of now fall outside
DELIVERY_WINDOW = 20.0


def _at(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_conversions_are_counted_once_and_only_within_the_windows(ray_session: Any, tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--seed", "7")
    port = free_port()
    with running_stack(
        tmp_path, sim, tps=300, name="conv", links={"port": port, "scanner_seconds": 0}
    ) as stack:
        redirect = ApiProcess(tmp_path, stack.config_dir, stack.env, port=port, module="api.redirect")
        try:
            path = tmp_path / "conv.csv"
            campaign_csv(path, "905328", 40)
            with stack.client() as http:
                created = post_job(
                    http,
                    path,
                    template="Selam {ad}: {link}",
                    link_url="https://shop.example/k",
                    click_window_days=str(CLICK_WINDOW / 86400),
                    delivery_window_days=str(DELIVERY_WINDOW / 86400),
                )
                assert created.status_code == 202, created.text
                job_id = created.json()["id"]
                assert wait_state(http, job_id, "done", "failed")["state"] == "done"
                wait_for(
                    lambda: http.get(f"/v1/jobs/{job_id}").json()["receipts"]["awaiting"] == 0,
                    timeout=30,
                    what="every receipt",
                )
                report = list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/report").text)))
            delivered = [r for r in report if r["receipt"] == "delivered"]
            assert len(delivered) >= 12, "the simulator delivers most messages"
            clicked, plain = delivered[:6], delivered[6:]
            with httpx.Client(base_url=redirect.url) as web:
                for r in clicked:
                    assert web.get(f"/{r['link_code']}", headers={"User-Agent": PHONE}).status_code == 302

            with stack.client() as http:
                rows = {
                    r["row"]: r
                    for r in csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/report").text))
                }
                click_at = {r["row"]: _time(rows[r["row"]]["first_click_at"]) for r in clicked}

                def convert(expect: int = 201, **body: Any) -> dict[str, Any]:
                    answer = http.post("/v1/conversions", json=body)
                    assert answer.status_code == expect, answer.text
                    return answer.json()  # type: ignore[no-any-return]

                # By link code (or the whole short link), within the click window of the click.
                a = clicked[0]
                first = convert(event_id="order-1", link_code=a["link_code"], value="100.50", currency="TRY")
                assert (first["job_id"], first["row"], first["attributed"], first["by"]) == (
                    job_id,
                    int(a["row"]),
                    True,
                    "click",
                )
                assert (first["value"], first["currency"], first["duplicate"]) == ("100.5", "TRY", False)
                # Sent again, or naming the recipient another way: counted once, the same answer.
                again = convert(200, event_id="order-1", link_code=a["link_code"], value="100.50")
                other = convert(200, event_id="order-1", job_id=job_id, msisdn=plain[0]["msisdn"])
                assert again == other == {**first, "duplicate": True}

                b = clicked[1]
                convert(
                    event_id="order-2",
                    link_code=f"http://127.0.0.1:{port}/{b['link_code']}",
                    value="20",
                    occurred_at=_at(click_at[b["row"]] + CLICK_WINDOW - 5),
                )
                late = convert(
                    event_id="order-3",
                    link_code=clicked[2]["link_code"],
                    value="999",
                    occurred_at=_at(click_at[clicked[2]["row"]] + CLICK_WINDOW + 5),
                )
                assert (late["attributed"], late["by"]) == (False, None)  # its delivery was earlier still
                before = convert(
                    event_id="order-4",
                    link_code=clicked[3]["link_code"],
                    occurred_at=_at(_time(clicked[3]["acked_at"]) - 3600),
                )
                assert before["attributed"] is False  # a touch after the conversion never counts

                # By job and number (as people write it) and by message id: within the delivery window.
                c, d, e = plain[0], plain[1], plain[2]
                national = "0" + c["msisdn"].lstrip("+")[2:]
                by_number = convert(
                    event_id="signup-1",
                    job_id=job_id,
                    msisdn=national,
                    value="5.25",
                    occurred_at=_at(_time(c["receipt_at"]) + DELIVERY_WINDOW - 5),
                )
                assert (by_number["row"], by_number["by"]) == (int(c["row"]), "delivery")
                by_id = convert(
                    event_id="signup-2",
                    message_id=d["message_ids"].split()[0].upper(),
                    occurred_at=_at(_time(d["receipt_at"]) + 1),
                )
                assert (by_id["row"], by_id["by"]) == (int(d["row"]), "delivery")
                stale = convert(
                    event_id="signup-3",
                    job_id=job_id,
                    msisdn=e["msisdn"],
                    occurred_at=_at(_time(e["receipt_at"]) + DELIVERY_WINDOW + 5),
                )
                assert stale["attributed"] is False
                convert(event_id="order-5", link_code=a["link_code"], value="0.25")  # a second from row a

                # What cannot be counted is refused, naming why; nothing is counted for it.
                refusals = [
                    (404, "unknown_recipient", {"link_code": "Zz" + a["link_code"][2:]}),
                    (404, "unknown_recipient", {"job_id": job_id, "msisdn": "+905000000001"}),
                    (404, "unknown_recipient", {"message_id": "no-such-id"}),
                    (404, "job_not_found", {"job_id": "nope", "msisdn": c["msisdn"]}),
                    (422, "invalid_conversion", {"job_id": job_id, "msisdn": "hello"}),
                    (422, "currency_mismatch", {"link_code": a["link_code"], "currency": "EUR"}),
                    (422, "invalid_request", {"msisdn": c["msisdn"]}),
                    (422, "invalid_request", {"link_code": a["link_code"], "job_id": job_id, "msisdn": "1"}),
                    (422, "invalid_request", {"link_code": a["link_code"], "value": "-1"}),
                    (422, "invalid_request", {"link_code": a["link_code"], "value": "1.0000001"}),
                    (
                        422,
                        "invalid_conversion",
                        {
                            "link_code": a["link_code"],
                            "occurred_at": _at(datetime.now(UTC).timestamp() + 86400),
                        },
                    ),
                ]
                for status, code, body in refusals:
                    answer = http.post("/v1/conversions", json={"event_id": f"bad-{code}", **body})
                    assert (answer.status_code, answer.json()["code"]) == (status, code), (body, answer.text)
                readonly = http.post(
                    "/v1/conversions",
                    json={"event_id": "x", "link_code": a["link_code"]},
                    headers={"Authorization": f"Bearer {stack.read_token}"},
                )
                assert readonly.status_code == 403

                # A view may be up to api.view_max_age old (asks share a read): wait for the clicks to
                # show in it; the figures are checked exactly below.
                view = wait_for(
                    lambda: (v := http.get(f"/v1/jobs/{job_id}").json())["clicks"]["unique"] >= 6 and v,
                    timeout=10,
                    what="the clicks in the job's view",
                )
                final = list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/report").text)))

                # The event streams, read back whole; then moved to Parquet in the job's folder (as
                # the API does hourly) and read back the same, from the files.
                def exported(kind: str) -> list[dict[str, str]]:
                    return list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/{kind}").text)))

                clicks_before, conversions_before = exported("clicks"), exported("conversions")
                record = stack.redis.hgetall(keys.job(job_id))
                directory = JobFiles.at(tmp_path / "jobs").dir(record[b"dir"].decode())
                moved = events.compact(stack.redis, job_id, directory, older_than=0)
                assert moved == {"clicks": len(clicks_before), "conversions": len(conversions_before)}
                assert stack.redis.xlen(keys.job_click_events(job_id)) == 0
                assert events.compact(stack.redis, job_id, directory, older_than=0) == {
                    "clicks": 0,
                    "conversions": 0,
                }
                assert (exported("clicks"), exported("conversions")) == (clicks_before, conversions_before)
        finally:
            redirect.stop()

    assert view["clicks"]["unique"] == 6
    assert len(clicks_before) == 6 and {r["row"] for r in clicks_before} == {r["row"] for r in clicked}
    assert [r["event_id"] for r in conversions_before] == [
        "order-1", "order-2", "order-3", "order-4", "signup-1", "signup-2", "signup-3", "order-5",
    ]  # fmt: skip
    assert [r["by"] for r in conversions_before] == [
        "click",
        "click",
        "",
        "",
        "delivery",
        "delivery",
        "",
        "click",
    ]
    assert (
        view["conversions"].pop("holdout_conversions"),
        view["conversions"].pop("holdout_converters"),
    ) == (0, 0)
    view["conversions"].pop("period_converters")  # the holdout test's (test_variants.py)
    assert view["conversions"] == {
        "conversions": 5,  # order-1, order-2, order-5 by click; signup-1, signup-2 by delivery
        "by_click": 3,
        "by_delivery": 2,
        "unattributed": 3,  # order-3, order-4, signup-3
        "converters": 4,
        "value": "126",  # 100.50 + 20 + 5.25 + 0.25
        "conversion_rate": round(5 / 6, 4),
    }
    got = {
        r["row"]: (int(r["conversions"] or 0), r["value"]) for r in final if r["conversions"] not in ("", "0")
    }
    assert got == {
        a["row"]: (2, "100.750000"),
        b["row"]: (1, "20.000000"),
        c["row"]: (1, "5.250000"),
        d["row"]: (1, "0.000000"),
    }
