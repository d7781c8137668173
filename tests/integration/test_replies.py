"""Replies over real SMPP: the simulator sends MO to the stack's binds; the replies processor puts
them together and acts on them; the opt-outs they make filter the next job's rows."""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from rich.console import Console

from api.cli import main as cli
from api.cli.console import kpi_table
from tests.helpers import SimProcess, wait_for
from tests.integration.stack import WebhookReceiver, post_job, running_stack, wait_state

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
    ray_session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimProcess(tmp_path, "--account", "test:secret", "--seed", "17")
    hook = WebhookReceiver()  # every reply is POSTed here, signed with the replies' secret
    monkeypatch.setenv("ULAK_REPLIES_WEBHOOK_SECRET", "mo-secret")
    config = RULES | {"webhook_url": hook.url}
    with running_stack(tmp_path, sim, tps=200, name="replies", replies=config) as stack:
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
            wait_for(lambda: len(hook.accepted) >= 10, timeout=30, what="the replies' webhooks")
            assert (
                sorted(hook.accepted) == sorted(f"mo/{r['id']}" for r in []) or len(set(hook.accepted)) == 10
            )
            [endpoint] = http.get("/v1/webhooks").json()["endpoints"]
            assert (endpoint["url"], endpoint["dead"]) == (hook.url, 0) and endpoint["delivered"] >= 10
            assert http.get(f"/v1/webhooks/{endpoint['id']}/dead").json()["dead"] == []
            assert http.post(f"/v1/webhooks/{endpoint['id']}/replay").json()["replayed"] == 0
            assert http.get("/v1/webhooks/0123456789abcdef/dead").status_code == 404
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
            plain = post_job(http, path, template="Merhaba {ad}").json()["id"]
            branded = post_job(http, path, template="Merhaba {ad}", brand="acme").json()["id"]
            views = [wait_state(http, j, "done") for j in (plain, branded)]
            assert [v["counts"]["rejected"] for v in views] == [5, 6]
            metrics = http.get("/metrics").text
            assert 'ulak_replies_total{kind="optout"} 6' in metrics

            # The keyword rules changed by the API: in force within seconds, and back to the config's.
            assert http.get("/v1/replies/keywords").json()["source"] == "config"
            changed = http.put("/v1/replies/keywords", json={"optout_words": ["Abonelikten"]})
            assert changed.status_code == 200 and changed.json()["optout_words"] == ["Abonelikten"], (
                changed.text
            )
            bad = http.put("/v1/replies/keywords", json={"optout_words": ["🙏"]})
            assert bad.status_code == 422 and bad.json()["code"] == "invalid_keyword"
            time.sleep(2.5)
            sim.control(op="mo", system_id="test", source="905321000031", dest="4545", text="ABONELİKTEN çık")
            sim.control(op="mo", system_id="test", source="905321000032", dest="4545", text="RET")
            _wait_replies(http, len(sent) + 6)
            kinds = {r["number"]: r["kind"] for r in _replies(http, limit=2)["items"]}
            assert kinds == {"905321000031": "optout", "905321000032": "reply"}
            assert http.delete("/v1/replies/keywords").json()["source"] == "config"
        records = stack.records("9053210000")
        stats = sim.stats()
    to = [r["dst"] for r in records]
    for number in ("905321000001", "905321000002", "905321000004", "905321000005", "905321000011"):
        assert number not in to
    assert to.count("905321000010") == 1 and to.count("905321000003") == 2
    assert stats["mo_answered"] == stats["mo_sent"] == len(sent) + 1 + 3 + 3 + 1 + 2


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


def test_a_commercial_job_sends_only_with_consent_and_says_how_to_opt_out(
    ray_session: Any, tmp_path: Path
) -> None:
    sim = SimProcess(tmp_path, "--account", "test:secret", "--seed", "19")
    n = {k: f"9053220000{i:02d}" for i, k in enumerate("ABCDEFG", 1)}
    with running_stack(tmp_path, sim, tps=200, name="consent") as stack, stack.client() as http:
        day1, day2 = "2026-11-01T10:00:00+03:00", "2026-11-02T10:00:00+03:00"
        records = [
            {"number": n["A"], "status": "ONAY", "date": day1, "source": "HS_WEB"},
            {"number": n["B"], "status": "ONAY", "date": day1},
            {"number": n["B"], "status": "RET", "date": day2},  # later: RET
            {"number": n["C"], "status": "ONAY", "date": day1},
            {"number": n["C"], "status": "RET", "date": day1},  # the same date: RET stands
            {"number": n["D"], "status": "RET", "date": day1},
            {"number": n["D"], "status": "ONAY", "date": day2},  # given again later: ONAY
            {"number": n["F"], "status": "ONAY", "date": day1},
            {"number": n["G"], "status": "ONAY", "date": day2},
        ]
        answer = http.post("/v1/consents", json={"records": records})
        assert answer.status_code == 201, answer.text
        # An older record changes nothing.
        http.post("/v1/consents", json={"records": [{"number": n["B"], "status": "ONAY", "date": day1}]})
        assert http.get(f"/v1/consents/{n['B']}").json()["status"] == "RET"
        assert http.get(f"/v1/consents/{n['C']}").json()["status"] == "RET"
        assert http.get(f"/v1/consents/{n['D']}").json()["status"] == "ONAY"
        assert http.get(f"/v1/consents/{n['E']}").status_code == 404
        # The same from a file, by the CLI: G given again later, with İYS's column names.
        consents = tmp_path / "consents.csv"
        consents.write_text(
            f"recipient,status,consentDate,source\n+{n['G']},RET,2026-11-01 09:00:00,HS_WEB\n", "utf-8"
        )
        remote = ["--api", stack.api.url, "--key", stack.token]
        assert cli.main(["consents", "import", str(consents), *remote]) == 0
        assert http.get(f"/v1/consents/{n['G']}").json()["status"] == "ONAY"  # its ONAY is later
        # F opts out by reply: on the opt-out list, and its consent is RET now.
        sim.control(op="mo", system_id="test", source=n["F"], dest="4545", text="RET")
        wait_for(
            lambda: http.get(f"/v1/consents/{n['F']}").json().get("status") == "RET",
            timeout=30,
            what="the opt-out by reply to reach the consent record",
        )
        iys = list(csv.DictReader(http.get("/v1/optouts.iys.csv").text.splitlines()))
        assert [(r["recipient"], r["status"], r["source"], r["type"]) for r in iys] == [
            ("+" + n["F"], "RET", "HS_MESAJ", "MESAJ")
        ]
        assert cli.main(["optouts", "export", str(tmp_path / "iys.csv"), "--iys", *remote]) == 0
        assert (tmp_path / "iys.csv").read_text("utf-8") == http.get("/v1/optouts.iys.csv").text

        path = tmp_path / "commercial.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["telefon", "ad", "metin"])
            for key, number in n.items():
                text = f"Kampanya {key}. Çıkmak için RET yazıp 4545'e gönderin" if key != "G" else "Kampanya"
                w.writerow(["+" + number, key, text])
        refused = post_job(http, path, template="Merhaba {ad}, indirim!", category="commercial")
        assert refused.status_code == 422 and refused.json()["code"] == "no_optout_text", refused.text
        assert refused.json()["field"] == "template"
        variants = json.dumps(
            [
                {"name": "A", "template": "Merhaba {ad}. RET yazıp 4545e gönderin"},
                {"name": "B", "template": "Merhaba"},
            ]
        )
        refused = post_job(http, path, template="x RET", category="commercial", variants=variants)
        assert refused.status_code == 422 and refused.json()["field"] == "variants[1].template"

        good = "Merhaba {ad}, %20 indirim! Listeden çıkmak için İPTAL yazıp 4545'e gönderin."
        commercial = post_job(http, path, template=good, category="commercial").json()["id"]
        by_column = post_job(http, path, text_column="metin", category="commercial").json()["id"]
        informational = post_job(http, path, template="Hesabınız güncellendi {ad}").json()["id"]
        views = {j: wait_state(http, j, "done") for j in (commercial, by_column, informational)}
        assert views[commercial]["counts"]["rejected"] == 4
        assert views[commercial]["rejected_reasons"] == {"opted_out": 1, "no_consent": 3}
        assert views[by_column]["rejected_reasons"] == {"opted_out": 1, "no_consent": 3, "no_optout_text": 1}
        assert views[informational]["rejected_reasons"] == {"opted_out": 1}
        rejected = http.get(f"/v1/jobs/{commercial}/rejected", params={"format": "csv"}).text
        reasons = {r["telefon"].lstrip("+"): r["reason"] for r in csv.DictReader(rejected.splitlines())}
        assert reasons == {
            n["B"]: "no_consent",
            n["C"]: "no_consent",
            n["E"]: "no_consent",
            n["F"]: "opted_out",
        }
        records_sent = stack.records("9053220000")
    commercial_sent = sorted(r["dst"] for r in records_sent if "İPTAL" in r["text"])
    assert commercial_sent == sorted([n["A"], n["D"], n["G"]])


def _survey_file(path: Path, numbers: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["telefon", "ad"])
        for number in numbers:
            w.writerow(["+" + number, "Müşteri"])
    return path


YES_NO = json.dumps(
    {"kind": "yes_no", "followups": {"yes": "Teşekkürler!", "no": "Neyi daha iyi yapabiliriz?"}}
)
NPS = json.dumps({"kind": "nps", "reply_to": "5555", "followups": {"detractor": "Üzgünüz. Neyi düzeltelim?"}})


def test_yes_no_and_nps_surveys_count_their_answers(ray_session: Any, tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--account", "test:secret", "--seed", "20")
    yes_no = [f"9053230000{i:02d}" for i in range(10)]
    scored = [f"9053240000{i:02d}" for i in range(20)]
    with (
        running_stack(tmp_path, sim, tps=200, name="survey", replies={"followup_seconds": 1}) as stack,
        stack.client() as http,
    ):
        question = "Aldığınız hizmetten memnun musunuz? EVET veya HAYIR yazın"
        first = post_job(
            http, _survey_file(tmp_path / "yn.csv", yes_no), template=question, sender="4545", survey=YES_NO
        ).json()["id"]
        nps_q = "Bizi bir arkadaşınıza ne kadar önerirsiniz? 0-10 arası bir puan yazın"
        second = post_job(
            http,
            _survey_file(tmp_path / "nps.csv", scored),
            template=nps_q,
            survey=NPS,
        ).json()["id"]
        no_reply_to = post_job(http, _survey_file(tmp_path / "x.csv", yes_no[:1]), template="x", survey="nps")
        assert no_reply_to.status_code == 422 and no_reply_to.json()["field"] == "survey", no_reply_to.text
        for job_id in (first, second):
            wait_state(http, job_id, "done")

        answers = [" evet!", "Evet", "EVET 👍", "e", "yes", "Tamam", "Hayır", "HAYIR", "hayir.", "belki"]
        for number, text in zip(yes_no, answers, strict=True):
            sim.control(op="mo", system_id="test", source=number, dest="4545", text=text)
        _wait_replies(http, 10)
        sim.control(op="mo", system_id="test", source=yes_no[0], dest="4545", text="Teşekkürler, çok iyiydi")
        sim.control(op="mo", system_id="test", source=yes_no[1], dest="4545", text="Hayır")  # changes nothing
        sim.control(op="mo", system_id="test", source="905329999999", dest="4545", text="Evet")  # not asked
        scores = [
            "10",
            "on",
            "10!",
            "ten",
            "Puanım 10",
            "9",
            "9/10",
            "dokuz",
            "8",
            "8",
            "7",
            "yedi",
            "6",
            "6",
            "altı",
            "3",
            "3",
            "0",
            "bilmiyorum",
            "çok pahalı",
        ]
        for number, text in zip(scored, scores, strict=True):
            sim.control(op="mo", system_id="test", source=number, dest="5555", text=text)
        _wait_replies(http, 10 + 3 + 20)

        def followed_up() -> bool:
            views = [http.get(f"/v1/jobs/{j}/summary").json()["survey"]["followups"] for j in (first, second)]
            if [v["sent"] for v in views] != [9, 6]:
                return False
            return all(http.get(f"/v1/jobs/{j}").json()["state"] == "done" for v in views for j in v["jobs"])

        wait_for(followed_up, timeout=90, interval=0.5, what="the follow-ups to be sent")
        s1 = http.get(f"/v1/jobs/{first}/summary").json()
        s2 = http.get(f"/v1/jobs/{second}/summary").json()
        kinds = [r["kind"] for r in _replies(http, limit=100)["items"]]
        sent = Counter((r["dst"], r["text"]) for r in stack.records("90532"))
    yn = s1["survey"]
    assert (yn["kind"], yn["responses"], yn["unparsed"], yn["comments"], yn["repeated"]) == (
        "yes_no",
        9,
        1,
        2,
        1,
    )
    assert yn["yes_no"] == {"yes": 6, "no": 3, "yes_share": 0.6667, "no_share": 0.3333}
    assert yn["response_rate"] == (round(9 / s1["delivered"], 4) if s1["delivered"] else None)
    assert yn["time_to_answer"]["p50_seconds"] > 0
    texts = {r["text"] for r in yn["free_replies"]}
    assert texts == {"belki", "Teşekkürler, çok iyiydi", "Hayır"}
    comment = next(r for r in yn["free_replies"] if r["text"].startswith("Teşekkürler"))
    assert comment["number"] == yes_no[0] and comment["answer"] == "yes"

    nps = s2["survey"]["nps"]
    assert s2["survey"]["responses"] == 18 and s2["survey"]["unparsed"] == 2
    assert nps["distribution"] == {
        "0": 1,
        "1": 0,
        "2": 0,
        "3": 2,
        "4": 0,
        "5": 0,
        "6": 3,
        "7": 2,
        "8": 2,
        "9": 3,
        "10": 5,
    }
    assert (nps["promoters"], nps["passives"], nps["detractors"]) == (8, 4, 6)
    assert nps["nps"] == round(100 * (8 - 6) / 18, 2)
    shown = io.StringIO()
    kpi_table(s1, Console(file=shown, width=200))
    kpi_table(s2, Console(file=shown, width=200))
    assert "YES 6 (66.7%) · NO 3 (33.3%)" in shown.getvalue() and "NPS 11.11" in shown.getvalue()
    thanks = {n for (n, t) in sent if t == "Teşekkürler!"}
    assert thanks == set(yes_no[:6]) and {n for (n, t) in sent if t.startswith("Neyi")} == set(yes_no[6:9])
    assert {n for (n, t) in sent if t.startswith("Üzgünüz")} == set(scored[12:18])
    assert all(count == 1 for (n, t), count in sent.items())
    assert kinds.count("answer") == 9 + 18 and kinds.count("reply") == 1 + 2 + 2 + 1


def test_help_words_and_a_brands_keywords_are_answered_once_a_day(ray_session: Any, tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--account", "test:secret", "--seed", "23")
    vip = "ACME VIP listesine katıldınız. Çıkmak için RET yazın."
    config = {
        "rules": [
            {
                "to": "4646",
                "brand": "acme",
                "name": "ACME",
                "keywords": [{"word": "KATIL", "reply": vip, "list": "vip"}],
            }
        ],
        "followup_seconds": 1,
    }
    with (
        running_stack(tmp_path, sim, tps=200, name="keywords", replies=config) as stack,
        stack.client() as http,
    ):

        def mo(number: str, to: str, text: str) -> None:
            sim.control(op="mo", system_id="test", source=number, dest=to, text=text)

        mo("905327000001", "4545", "YARDIM")
        mo("905327000002", "4646", "bilgi lütfen")
        mo("905327000003", "4646", "Katıl")
        mo("905327000004", "4545", "RET")
        got = _wait_replies(http, 4)
        mo("905327000001", "4545", "Yardım!")  # the same word again the same day: no second answer
        mo("905327000004", "4545", "help")  # on the opt-out list, and asks: answered all the same
        mo("905327000005", "4646", "ret katıl")  # the first word decides: an opt-out, no answer

        def all_seven() -> dict[str, Any] | None:
            got = _replies(http, limit=200)
            pairs = {(r["number"], r["text"]) for r in got["items"]}
            return got if len(pairs) == 7 and ("905327000005", "ret katıl") in pairs else None

        got = wait_for(all_seven, timeout=30, what="the seven replies")
        assert got["counts"]["messages"] == 7, got["counts"]  # each once
        kinds = {(r["number"], r["text"]): (r["kind"], r["keyword"]) for r in got["items"]}
        assert kinds[("905327000001", "YARDIM")] == ("keyword", "yardim")
        assert kinds[("905327000003", "Katıl")] == ("keyword", "katil")
        assert kinds[("905327000005", "ret katıl")][0] == "optout"
        assert got["counts"]["keyword"] == 5
        assert [r["number"] for r in _replies(http, kind="keyword")["items"]].count("905327000001") == 2

        def answers() -> dict[str, list[tuple[str, str]]]:
            by: dict[str, list[tuple[str, str]]] = {}
            for r in stack.records("90532700000"):
                by.setdefault(r["dst"], []).append((r["src"], r["text"]))
            return by

        expected = {"905327000001", "905327000002", "905327000003", "905327000004"}
        wait_for(lambda: set(answers()) == expected, timeout=60, what="the keyword answers")
        got_answers = answers()
        assert got_answers["905327000001"] == [
            (
                "4545",
                "4545: Bu numaradan bilgilendirme ve kampanya mesajları alıyorsunuz. Almak "
                "istemiyorsanız RET yazıp 4545 numarasına gönderin.",
            )
        ]
        assert got_answers["905327000002"] == [
            (
                "4646",
                "ACME: Bu numaradan bilgilendirme ve kampanya mesajları alıyorsunuz. Almak "
                "istemiyorsanız RET yazıp 4646 numarasına gönderin.",
            )
        ]
        assert got_answers["905327000003"] == [("4646", vip)]
        assert len(got_answers["905327000004"]) == 1
        joined = http.get("/v1/replies/lists/vip", params={"brand": "acme"}).json()
        assert (joined["total"], joined["items"]) == (1, ["+905327000003"])

        # A keyword that is an opt-out word would never be answered: refused, nothing changes.
        bad = http.put(
            "/v1/replies/keywords",
            json={
                "optout_words": ["RET"],
                "rules": [{"to": "4646", "keywords": [{"word": "ret", "reply": "x"}]}],
            },
        )
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_keyword", bad.text
        assert http.get("/v1/replies/keywords").json()["source"] == "config"
        metrics = http.get("/metrics").text
        assert 'ulak_replies_total{kind="keyword"} 5' in metrics
