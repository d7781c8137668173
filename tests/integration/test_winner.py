"""Test then send the winner: a test slice split across two variants goes first; the variant built to
win (its recipients click, the other's do not) is picked after the decision period, and the rest of the
recipients get its text on the wire; the decision and its figures are recorded."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import ApiProcess, SimProcess, wait_for
from tests.integration.stack import assert_adds_up, post_job, running_stack, wait_state
from ulak.redis_server import free_port

PHONE = "Mozilla/5.0 (Linux; Android 14) Chrome/120 Mobile Safari/537.36"
ROWS = 1500
VARIANTS = [
    {"name": "A", "template": "A: Merhaba {ad}, {link}"},
    {"name": "B", "template": "B: {ad}, bu hafta size özel indirim var, bakın: {link}"},
]


def test_the_rest_is_sent_with_the_variant_that_won_the_test(ray_session: Any, tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--seed", "5")
    port = free_port()
    with running_stack(
        tmp_path, sim, tps=800, name="winner", links={"port": port, "scanner_seconds": 0}
    ) as stack:
        redirect = ApiProcess(tmp_path, stack.config_dir, stack.env, port=port, module="api.redirect")
        try:
            path = tmp_path / "winner.csv"
            with path.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["telefon", "ad"])
                for i in range(ROWS):
                    w.writerow([f"+905331{i:06d}", f"Ada {i}"])
            options = {
                "template": "Merhaba {ad}: {link}",
                "link_url": "https://shop.example/w",
                "variants": json.dumps(VARIANTS),
                "test_share": "0.3",
                "decide_after_minutes": "0.3",
                "winner_by": "clicks",
            }
            with stack.client() as http:
                alone = post_job(http, path, template="Merhaba {ad}", test_share="0.3")
                assert alone.status_code == 422 and alone.json()["field"] == "test_share", alone.text
                created = post_job(http, path, **options)
                assert created.status_code == 202, created.text
                job_id = created.json()["id"]

                # The test slice goes out, then the job waits for the decision, saying so.
                def waiting() -> str:
                    return str(http.get(f"/v1/jobs/{job_id}").json()["waiting"] or "")

                wait_for(lambda: "winner" in waiting(), timeout=60, what="the decision period")

                def report() -> list[dict[str, str]]:
                    return list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/report").text)))

                wait_for(
                    lambda: all(r["receipt"] for r in report() if r["phase"] == "test"),
                    timeout=30,
                    what="the test slice's receipts",
                )
                first = report()
                test = [r for r in first if r["phase"] == "test"]
                rest = [r for r in first if r["phase"] == "rest"]
                assert {r["variant"] for r in rest} == {"rest"} and {r["status"] for r in rest} == {"pending"}
                assert {r["variant"] for r in test} == {"A", "B"}
                assert abs(len(test) - 0.3 * ROWS) < 5 * (ROWS * 0.3 * 0.7) ** 0.5
                # B is built to win: half its delivered recipients click; none of A's.
                b_rows = [r for r in test if r["variant"] == "B" and r["receipt"] == "delivered"]
                with httpx.Client(base_url=redirect.url) as web:
                    for r in b_rows[::2]:
                        assert web.get(f"/{r['link_code']}", headers={"User-Agent": PHONE}).status_code == 302
                clicks = http.get(f"/v1/jobs/{job_id}").json()["clicks"]
                assert clicks["unique"] == len(b_rows[::2]) > 50, clicks
                assert "winner" in waiting()  # still deciding: the clicks came in time

                assert wait_state(http, job_id, "done", "failed")["state"] == "done"
                wait_for(
                    lambda: http.get(f"/v1/jobs/{job_id}").json()["receipts"]["awaiting"] == 0,
                    timeout=30,
                    what="every receipt",
                )
                view = http.get(f"/v1/jobs/{job_id}").json()
                final = list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/report").text)))
                summary = http.get(f"/v1/jobs/{job_id}/summary").json()
            records = stack.records("905331")
        finally:
            redirect.stop()

    assert_adds_up(view)
    assert view["counts"]["acked"] + view["counts"]["failed"] == ROWS == len(records)
    assert view["parts"]["total"] == view["parts"]["sent"]  # the rest counted with the winner's parts
    by_number = {"+" + r["dst"]: r for r in records}
    rest_numbers = {r["msisdn"] for r in rest}
    for r in final:
        text = by_number["+" + r["msisdn"].lstrip("+")]["text"]
        if r["msisdn"] in rest_numbers:
            assert (r["variant"], r["phase"]) == ("B", "rest") and text.startswith("B: "), (r, text)
        else:
            assert r["phase"] == "test" and text.startswith(f"{r['variant']}: "), (r, text)
    assert all(int(r["parts"]) == 1 for r in final)

    decision = summary["decision"]
    assert (decision["winner"], decision["by"]) == ("B", "clicks")
    assert (
        decision["variants"]["B"]["clicked"] == len(b_rows[::2]) and decision["variants"]["A"]["clicked"] == 0
    )
    assert decision["variants"]["B"]["delivered"] == len(b_rows)
    assert summary["ab_test"]["samples"]["B"] == len(b_rows)  # compared on the test slice alone
    assert summary["variants"]["B"]["recipients"] == len(rest) + sum(r["variant"] == "B" for r in test)
