"""Tracked links end to end: the texts the SMSC received carry per-row short links, and the
redirect service (a real process over HTTP) leads each to the job's page and counts its clicks:
people's, unique and total, apart from previews, scanners and HEAD; anything else is a 404."""

from __future__ import annotations

import csv
import io
import re
import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pyarrow as pa

from tests.helpers import ApiProcess, SimProcess, wait_for
from tests.integration.stack import assert_adds_up, campaign_csv, post_job, running_stack, wait_state
from ulak import keys, links
from ulak.records import LinkOwner
from ulak.redis_server import free_port

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
PREVIEW = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
TARGET = "https://shop.example/kampanya?src=1&utm_source=sms&utm_campaign=kas%C4%B1m"


def test_links_in_the_sent_texts_lead_to_the_page_and_count_clicks(ray_session: Any, tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--seed", "4")
    port = free_port()
    with running_stack(
        tmp_path, sim, tps=300, name="links", links={"port": port, "scanner_seconds": 1}
    ) as stack:
        redirect = ApiProcess(tmp_path, stack.config_dir, stack.env, port=port, module="api.redirect")
        try:
            path = tmp_path / "links.csv"
            expected = campaign_csv(path, "905327", 60)
            with stack.client() as http:
                # {link} and link_url go together: either alone is refused, naming what is missing.
                alone = post_job(http, path, template="Selam {ad} {link}")
                assert alone.status_code == 422 and "link_url" in alone.text, alone.text
                unused = post_job(http, path, template="Selam {ad}", link_url="https://shop.example/")
                assert unused.status_code == 422 and "{link}" in unused.text, unused.text

                created = post_job(
                    http,
                    path,
                    template="Selam {ad}, kampanya: {link}",
                    link_url="https://shop.example/kampanya?src=1",
                    utm="utm_source=sms&utm_campaign=kasım",
                )
                assert created.status_code == 202, created.text
                job_id = created.json()["id"]
                view = wait_state(http, job_id, "done", "failed")
                assert view["state"] == "done", view
                wait_for(
                    lambda: http.get(f"/v1/jobs/{job_id}").json()["receipts"]["awaiting"] == 0,
                    timeout=30,
                    what="every receipt",
                )
                report = list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/report").text)))
            records = stack.records("905327")
            assert len(records) == expected["accepted"]  # one part each: the link counted in the text

            # Each text carries its own code, reserved for its job and row, and sent to that row's number.
            prefix = f"http://127.0.0.1:{port}/"
            codes: dict[str, str] = {}
            for r in records:
                found = re.search(re.escape(prefix) + r"([0-9A-Za-z]{8})\b", r["text"])
                assert found, r["text"]
                codes[r["dst"]] = found[1]
            assert len(set(codes.values())) == len(records)
            by_row = {int(r["row"]): r["msisdn"].lstrip("+") for r in report}
            row_of: dict[str, int] = {}
            for dst, code in codes.items():
                owner = LinkOwner.read(stack.redis.get(keys.link(code)))
                job, row_of[code], ledger = owner.job_id, owner.row, owner.ledger
                assert (job, ledger) == (job_id, "tcell") and by_row[row_of[code]] == dst

            # A click within scanner_seconds of its message's delivery is a carrier's scanner: a
            # redirect service told an hour counts a phone's click as a bot.
            env = {**stack.env, "ULAK_LINKS__SCANNER_SECONDS": "3600"}
            strict = ApiProcess(tmp_path, stack.config_dir, env, port=free_port(), module="api.redirect")
            try:
                first = httpx.get(f"{strict.url}/{list(codes.values())[30]}", headers={"User-Agent": PHONE})
                assert first.status_code == 302
            finally:
                strict.stop()
            # Its processes (links.workers) end with their supervisor, even one killed outright:
            # none is left answering on the port with nobody to stop it.
            env = {**stack.env, "ULAK_LINKS__WORKERS": "2"}
            killed = ApiProcess(tmp_path, stack.config_dir, env, port=free_port(), module="api.redirect")
            workers = psutil.Process(killed.process.pid).children()
            assert len(workers) >= 2, workers
            killed.stop(signal.SIGKILL)
            wait_for(
                lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers),
                timeout=15,
                what="the workers to end with their supervisor",
            )
            # The rest come more than the configured second after the last receipt.
            last = max(r["receipt_at"] for r in report)
            wait_for(
                lambda: time.time() > datetime.fromisoformat(last).timestamp() + 1.2,
                timeout=10,
                what="a second past the last receipt",
            )

            sent = list(codes.values())
            with httpx.Client(base_url=redirect.url, follow_redirects=False) as web:
                for code in sent[:20]:
                    answer = web.get(f"/{code}", headers={"User-Agent": PHONE})
                    assert answer.status_code == 302 and answer.headers["location"] == TARGET, answer
                for code in sent[:5]:  # clicked again: total, not unique
                    assert web.get(f"/{code}", headers={"User-Agent": PHONE}).status_code == 302
                for code in sent[20:25]:  # a HEAD is no person
                    assert web.head(f"/{code}", headers={"User-Agent": PHONE}).status_code == 302
                for code in sent[25:30]:  # nor is a link preview
                    assert web.get(f"/{code}", headers={"User-Agent": PREVIEW}).status_code == 302
                unknown = "Zz" + sent[0][2:] if not sent[0].startswith("Zz") else "Yy" + sent[0][2:]
                for wrong in (unknown, sent[0][:7], sent[0] + "!", "", "favicon.ico"):
                    miss = web.get(f"/{wrong}", headers={"User-Agent": PHONE})
                    assert miss.status_code == 404 and miss.text == "not found", (wrong, miss.text)
                assert web.post(f"/{sent[0]}").status_code == 405

                # A link that expired leads nowhere, like one that never was.
                [late] = links.reserve(
                    stack.redis, job_id=job_id, rows=pa.array([min(by_row)]), length=8, ttl=0.5
                ).to_pylist()
                assert web.get(f"/{late}", headers={"User-Agent": PHONE}).status_code == 302
                time.sleep(0.7)
                assert web.get(f"/{late}", headers={"User-Agent": PHONE}).status_code == 404

            with stack.client() as http:
                view = http.get(f"/v1/jobs/{job_id}").json()
                final = list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/report").text)))
            clicked = stack.redis.hgetall(keys.job_clicked_rows(job_id))
            events = stack.redis.xrange(keys.job_click_events(job_id))
        finally:
            redirect.stop()

    assert_adds_up(view)
    delivered = view["receipts"]["delivered"]
    assert delivered > 0
    # People's clicks, per row: the 20, the 5 again, and the late code's row (one of them, or not).
    people = Counter([row_of[c] for c in sent[:20] + sent[:5]] + [min(by_row)])
    clicks = view["clicks"]
    assert (clicks["total"], clicks["unique"], clicks["bots"]) == (26, len(people), 11), clicks
    assert clicks["click_rate"] == round(len(people) / delivered, 4)
    rows = {k.decode(): v.decode() for k, v in clicked.items()}
    assert {int(k): int(v) for k, v in rows.items() if ":" not in k} == dict(people)
    assert all(f"{k}:t" in rows for k in rows if ":" not in k)  # each clicked row's first click time
    # The row-level report says the same, row by row.
    assert {int(r["row"]): int(r["clicks"]) for r in final if int(r["clicks"])} == dict(people)
    assert all(bool(r["first_click_at"]) == (int(r["clicks"]) > 0) for r in final)
    assert {r["link_code"] for r in final} == set(codes.values())
    assert len(events) == 37
    assert all(b"127.0.0.1" not in b"".join(fields.values()) for _, fields in events)  # hashed, never kept
