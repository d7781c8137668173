"""An A/B test with a holdout, end to end: recipients split by a seeded hash of their number (the same
seed splits them the same way again), each variant's text and sender on the wire, the holdout never
sent; a variant constructed to win wins, significantly; the lift over the holdout is exactly what the
reported conversions make it."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

from ingest.numbers import as_uint64
from tests.helpers import ApiProcess, SimProcess, wait_for
from tests.integration.stack import assert_adds_up, post_job, running_stack, wait_state
from ulak.redis_server import free_port
from ulak.variants import Split, seed_of

PHONE = "Mozilla/5.0 (Linux; Android 14) Chrome/120 Mobile Safari/537.36"
ROWS = 3000
VARIANTS = [
    {"name": "A", "template": "A: Merhaba {ad}, {link}", "weight": 1},
    {"name": "B", "template": "B: {ad}, size özel: {link}", "sender": "ULAKB", "weight": 3},
]


def _file(path: Path) -> list[str]:
    numbers = [f"+905330{i:06d}" for i in range(ROWS)]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["telefon", "ad"])
        for i, number in enumerate(numbers):
            w.writerow([number, f"Ada {i}"])
    return numbers


def _report(http: httpx.Client, job_id: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(http.get(f"/v1/jobs/{job_id}/report").text)))


def test_an_ab_test_with_a_holdout(ray_session: Any, tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--seed", "3")
    port = free_port()
    with running_stack(
        tmp_path, sim, tps=800, name="ab", links={"port": port, "scanner_seconds": 0}
    ) as stack:
        redirect = ApiProcess(tmp_path, stack.config_dir, stack.env, port=port, module="api.redirect")
        try:
            path = tmp_path / "ab.csv"
            numbers = _file(path)
            options = {
                "template": "Merhaba {ad}: {link}",
                "link_url": "https://shop.example/ab",
                "variants": json.dumps(VARIANTS),
                "split_seed": "kasim-2026",
                "holdout": "0.1",
            }
            with stack.client() as http:
                bad = post_job(http, path, **{**options, "variants": "[{'name': 'A'}]"})
                assert bad.status_code == 422 and bad.json()["field"] == "variants", bad.text
                same = post_job(
                    http, path, **{**options, "variants": json.dumps([{"name": "A"}, {"name": "A"}])}
                )
                assert same.status_code == 422 and "differ" in same.text, same.text
                broken = [{"name": "A"}, {"name": "B", "template": "B {nope} {link}"}]
                wrong = post_job(http, path, **{**options, "variants": json.dumps(broken)})
                assert wrong.status_code == 422 and wrong.json()["field"] == "variants.1.template", wrong.text

                created = post_job(http, path, **options)
                assert created.status_code == 202, created.text
                job_id = created.json()["id"]
                assert wait_state(http, job_id, "done", "failed")["state"] == "done"
                wait_for(
                    lambda: http.get(f"/v1/jobs/{job_id}").json()["receipts"]["awaiting"] == 0,
                    timeout=30,
                    what="every receipt",
                )
                view = http.get(f"/v1/jobs/{job_id}").json()
                report = _report(http, job_id)
                # The same seed splits the same numbers the same way (a dry run: nothing sent).
                again = post_job(http, path, **options, dry_run="true")
                other = post_job(http, path, **{**options, "split_seed": "another"}, dry_run="true")
                replay = [wait_state(http, r.json()["id"], "done", "failed") for r in (again, other)]
                assert [v["state"] for v in replay] == ["done", "done"]
                split_again, split_other = (_report(http, v["id"]) for v in replay)

            records = stack.records("905330")
            assert_adds_up(view)
            variant_of = {"+" + r["msisdn"].lstrip("+"): r["variant"] for r in report}
            held = sorted(set(numbers) - set(variant_of))

            # The split is the seed's, number by number, and near the weights.
            split = Split(names=("A", "B"), weights=(1.0, 3.0), seed=seed_of("kasim-2026"), holdout=0.1)
            assigned = split.assign(as_uint64(pa.array([n.lstrip("+") for n in numbers])))
            expected = {n: split.labels[k] for n, k in zip(numbers, assigned.tolist(), strict=True)}
            wrong = [n for n, v in expected.items() if v != "holdout" and variant_of.get(n) != v]
            assert not wrong and len(variant_of) == sum(v != "holdout" for v in expected.values()), wrong[:5]
            assert held == sorted(n for n, v in expected.items() if v == "holdout")
            assert view["counts"]["held_out"] == len(held) and view["counts"]["accepted"] == ROWS - len(held)
            assert abs(len(held) - 0.1 * ROWS) < 5 * np.sqrt(ROWS * 0.1 * 0.9)
            sent_a = sum(1 for v in variant_of.values() if v == "A")
            n_sent = len(variant_of)
            assert abs(sent_a - n_sent / 4) < 5 * np.sqrt(n_sent * 0.25 * 0.75)
            replayed = {"+" + r["msisdn"].lstrip("+"): r["variant"] for r in split_again}
            assert replayed.keys() == variant_of.keys()
            assert sum(replayed[n] != v for n, v in variant_of.items()) == 0
            moved = sum(
                1 for r in split_other if variant_of.get("+" + r["msisdn"].lstrip("+")) != r["variant"]
            )
            assert moved > 0.3 * ROWS  # another seed is another split

            # On the wire: each row's variant's text and sender; the holdout never sent.
            assert len(records) == n_sent
            sent_to = {"+" + r["dst"]: r for r in records}
            assert not set(held) & set(sent_to)
            for number, variant in variant_of.items():
                record = sent_to[number]
                assert record["text"].startswith(f"{variant}: "), record["text"]
                assert record["src"] == ("ULAKB" if variant == "B" else "ULAK"), record

            # A is built to win: 60 % of its delivered recipients click, 10 % of B's.
            delivered = [r for r in report if r["receipt"] == "delivered"]
            by = {v: [r for r in delivered if r["variant"] == v] for v in ("A", "B")}
            clickers = by["A"][: int(len(by["A"]) * 0.6)] + by["B"][: int(len(by["B"]) * 0.1)]
            with httpx.Client(base_url=redirect.url) as web:
                for r in clickers:
                    assert web.get(f"/{r['link_code']}", headers={"User-Agent": PHONE}).status_code == 302
            # Conversions: a third of the clickers (by code), and a twentieth of the held out (by number).
            converts = clickers[::3]
            held_converts = held[::20]
            with stack.client() as http:
                for i, r in enumerate(converts):
                    ok = http.post("/v1/conversions", json={"event_id": f"c{i}", "link_code": r["link_code"]})
                    assert ok.status_code == 201 and ok.json()["by"] == "click", ok.text
                for i, number in enumerate(held_converts):
                    answer = http.post(
                        "/v1/conversions",
                        json={"event_id": f"h{i}", "job_id": job_id, "msisdn": number, "value": "3"},
                    )
                    assert answer.status_code == 201, answer.text
                    assert answer.json()["held_out"] is True and answer.json()["attributed"] is False
                summary = http.get(f"/v1/jobs/{job_id}/summary").json()
                exported = http.get(f"/v1/jobs/{job_id}/summary", params={"format": "csv"}).text
        finally:
            redirect.stop()

    a, b = summary["variants"]["A"], summary["variants"]["B"]
    assert (a["recipients"], b["recipients"]) == (sent_a, n_sent - sent_a)
    assert (a["delivered"], b["delivered"]) == (len(by["A"]), len(by["B"]))
    assert a["clicks"]["unique"] == int(len(by["A"]) * 0.6) and b["clicks"]["unique"] == int(
        len(by["B"]) * 0.1
    )
    test = summary["ab_test"]
    assert test["samples"] == {"A": len(by["A"]), "B": len(by["B"])}
    assert test["clicks"]["leader"] == "A" and test["clicks"]["significant"] is True
    assert test["clicks"]["p_value"] < 1e-6 and test["clicks"]["probability_best"]["A"] > 0.99
    assert summary["conversions"] == len(converts) == a["conversions"] + b["conversions"]

    holdout = summary["holdout"]
    assert holdout["held_out"] == {
        "recipients": len(held),
        "converters": len(held_converts),
        "rate": round(len(held_converts) / len(held), 4),
    }
    assert holdout["sent"] == {
        "recipients": n_sent,
        "converters": len(converts),
        "rate": round(len(converts) / n_sent, 4),
    }
    assert holdout["lift"] == round(
        round(len(converts) / n_sent, 4) - round(len(held_converts) / len(held), 4), 4
    )
    low, high = holdout["lift_interval_95"]
    assert low <= len(converts) / n_sent - len(held_converts) / len(held) <= high
    groups = [row["group"] for row in csv.DictReader(io.StringIO(exported))]
    assert groups == ["total", "operator:tcell", "variant:A", "variant:B"]


def test_a_send_time_test_sends_each_variant_from_its_own_time(ray_session: Any, tmp_path: Path) -> None:
    # B may go out only 25 s after the job is posted: every B row reaches the SMSC after that and
    # after every A row (no time of its own), and the job says meanwhile what it is waiting for.
    sim = SimProcess(tmp_path, "--seed", "4")
    with running_stack(tmp_path, sim, tps=800, name="sendtime") as stack:
        path = tmp_path / "sendtime.csv"
        _file(path)
        later = datetime.now(UTC) + timedelta(seconds=25)
        variants = [
            {"name": "A", "template": "A: Merhaba {ad}"},
            {"name": "B", "template": "B: Merhaba {ad}", "send_at": later.isoformat()},
        ]
        with stack.client() as http:
            refused = post_job(http, path, template="x {ad}", variants=json.dumps(variants), test_share="0.2")
            assert refused.status_code == 422 and "send_at" in refused.text, refused.text
            created = post_job(http, path, template="Merhaba {ad}", variants=json.dumps(variants))
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]

            def waits() -> str | None:
                view = http.get(f"/v1/jobs/{job_id}").json()
                return view["waiting"] or (json.dumps(view) if view["state"] in ("done", "failed") else None)

            waiting = wait_for(waits, timeout=60, what="the job to wait for B's time")
            assert "variant B" in waiting, waiting
            view = wait_state(http, job_id, "done", "failed", timeout=120)
            report = _report(http, job_id)
        records = stack.records("905330")
    assert view["state"] == "done"
    assert_adds_up(view)
    variant_of = {r["msisdn"].lstrip("+"): r["variant"] for r in report}
    assert len(records) == len(report) == ROWS
    a = [r["t"] for r in records if variant_of[r["dst"].lstrip("+")] == "A"]
    b = [r["t"] for r in records if variant_of[r["dst"].lstrip("+")] == "B"]
    assert a and b and len(a) + len(b) == ROWS
    assert min(b) >= later.timestamp() and max(a) < min(b)
    assert all(r["text"].startswith(variant_of[r["dst"].lstrip("+")] + ": ") for r in records)
