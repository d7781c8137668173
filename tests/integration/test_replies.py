"""Replies over real SMPP: the simulator sends MO to the stack's binds; the replies processor puts
them together and acts on them; the opt-outs they make filter the next job's rows."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import httpx
import ray

from tests.helpers import SimProcess, wait_for
from tests.integration.test_api import _post, _wait_state, running_stack

RULES = {"rules": [{"to": "4646", "brand": "acme", "optout_words": ["CIKIS"]}], "concat_timeout": 3}


def _replies(http: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = http.get("/v1/replies", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _wait_replies(http: httpx.Client, n: int) -> dict[str, Any]:
    return wait_for(  # type: ignore[no-any-return]
        lambda: (r := _replies(http, limit=200))["counts"]["messages"] >= n and r,
        timeout=30,
        what=f"{n} replies",
    )


def test_replies_opt_out_in_every_spelling_and_the_next_job_leaves_them_out(
    ray_session: Any, tmp_path: Path
) -> None:
    sim = SimProcess(tmp_path, "--account", "test:secret", "--seed", "17")
    with running_stack(tmp_path, sim, tps=200, name="replies", replies=RULES) as stack:
        sent = {
            "905321000001": "İPTAL",
            "905321000002": "iptal",
            "905321000003": "IPTAL",
            "905321000004": " stop!",
            "905321000005": "RET 🙏",
            "905321000006": "Teşekkürler, çok memnunum",
            "905321000007": "neden stop yazayım",
        }
        for number, text in sent.items():
            sim.control(op="mo", system_id="test", source=number, dest="4545", text=text)
        # Three parts, the last first, by UDH; and one by SAR, Turkish text with the shift table.
        long_text = "Aldığınız hizmetten memnun kaldım ama kargo çok geç geldi, lütfen bunu düzeltin!"
        sim.control(
            op="mo",
            system_id="test",
            source="905321000008",
            dest="4545",
            text=long_text,
            parts=3,
            order=[3, 1, 2],
        )
        sim.control(
            op="mo",
            system_id="test",
            source="+905321000009",
            dest="4545",
            text=long_text,
            parts=3,
            order=[2, 3, 1],
            concat="sar",
        )
        # To the brand's short code: its own word, on the brand's list only.
        sim.control(op="mo", system_id="test", source="905321000010", dest="4646", text="Çıkış")
        with stack.client() as http:
            got = _wait_replies(http, len(sent) + 3)
            by_number = {r["number"]: r for r in got["items"]}
            assert got["counts"]["messages"] == len(sent) + 3
            assert got["counts"]["parts"] == len(sent) + 3 + 3 + 1  # one part each, and two of three
            for number in ("905321000001", "905321000002", "905321000003", "905321000004", "905321000005"):
                assert by_number[number]["kind"] == "optout", by_number[number]
            assert by_number["905321000006"]["kind"] == "reply"
            assert by_number["905321000006"]["text"] == "Teşekkürler, çok memnunum"
            assert by_number["905321000007"]["kind"] == "reply"
            for number in ("905321000008", "905321000009"):
                assert (by_number[number]["text"], by_number[number]["parts"]) == (long_text, 3)
                assert by_number[number]["complete"] is True
            assert by_number["905321000010"]["kind"] == "optout"
            assert by_number["905321000010"]["brand"] == "acme"
            assert got["counts"]["optout"] == 6 and got["counts"]["reply"] == 4

            listed = http.get("/v1/optouts").json()
            entries = {e["number"]: e for e in listed["items"]}
            assert set(entries) == {f"90532100000{i}" for i in range(1, 6)}
            assert {e["source"] for e in entries.values()} == {"mo"}
            assert entries["905321000001"]["detail"] == "İPTAL"
            acme = http.get("/v1/optouts", params={"brand": "acme"}).json()
            assert [e["number"] for e in acme["items"]] == ["905321000010"] and acme["brands"] == ["acme"]

            # Opt back in by reply; add and remove by the API.
            sim.control(op="mo", system_id="test", source="905321000003", dest="4545", text="Başla")
            _wait_replies(http, len(sent) + 4)
            assert http.get("/v1/optouts/905321000003").status_code == 404
            added = http.post("/v1/optouts", json={"numbers": ["0532 100 00 11"]})
            assert added.status_code == 201 and added.json()["added"] == 1, added.text
            bad = http.post("/v1/optouts", json={"numbers": ["12345"]})
            assert bad.status_code == 422 and bad.json()["code"] == "invalid_number", bad.text
            assert http.get("/v1/optouts/+905321000011").json()["source"] == "api"

            # The next job: its rows on the global list are refused, and the brand's for its brand.
            path = tmp_path / "next.csv"
            with path.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["telefon", "ad"])
                for i in range(1, 13):
                    w.writerow([f"+9053210000{i:02d}", f"Kişi {i}"])
            plain = _post(http, path, template="Merhaba {ad}").json()["id"]
            branded = _post(http, path, template="Merhaba {ad}", brand="acme").json()["id"]
            views = [_wait_state(http, j, "done") for j in (plain, branded)]
            assert [v["counts"]["rejected"] for v in views] == [5, 6]
            metrics = http.get("/metrics").text
            assert 'ulak_replies_total{kind="optout"} 6' in metrics
        records = stack.records("9053210000")
        stats = sim.stats()
    to = [r["dst"] for r in records]
    for number in ("905321000001", "905321000002", "905321000004", "905321000005", "905321000011"):
        assert number not in to
    assert to.count("905321000010") == 1 and to.count("905321000003") == 2
    assert stats["mo_answered"] == stats["mo_sent"] == len(sent) + 1 + 3 + 3 + 1


def test_a_reply_whose_bind_dies_before_it_is_durable_comes_again(ray_session: Any, tmp_path: Path) -> None:
    """Redis away: the bind reads a reply and cannot make it durable, so it does not answer it; then
    every bind process is killed. The SMSC keeps the unanswered reply; the control plane makes the
    binds again once Redis is back, the SMSC sends the reply again, and it is kept, once."""
    sim = SimProcess(tmp_path, "--account", "test:secret", "--seed", "18")
    with running_stack(
        tmp_path, sim, tps=200, name="mokill", appendonly=True, jobs={"bind_supervision": 1}
    ) as stack:
        server = stack.redis_server
        assert server is not None
        server.kill()
        sim.control(op="mo", system_id="test", source="905321000021", dest="4545", text="İptal")
        wait_for(lambda: sim.stats()["mo_sent"] >= 1, timeout=10, what="the reply to reach a bind")
        time.sleep(0.5)
        assert sim.stats().get("mo_answered", 0) == 0  # not durable: not answered
        named = ray.util.list_named_actors(all_namespaces=True)
        binds = [
            a["name"] for a in named if a["namespace"] == stack.namespace and a["name"].startswith("bind:")
        ]
        assert binds
        for name in binds:
            ray.kill(ray.get_actor(name, namespace=stack.namespace), no_restart=True)
        server.start()
        with stack.client() as http:

            def kept() -> dict[str, Any] | None:
                answer = http.get("/v1/replies")
                return answer.json() if answer.status_code == 200 and answer.json()["items"] else None

            got = wait_for(kept, timeout=90, what="the reply, sent again to the new binds")
            assert [(r["number"], r["kind"]) for r in got["items"]] == [("905321000021", "optout")]
            assert http.get("/v1/optouts/905321000021").json()["source"] == "mo"
        stats = sim.stats()
    assert stats["mo_redelivered"] >= 1 and stats["mo_answered"] == 1
