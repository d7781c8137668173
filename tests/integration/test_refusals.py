"""Refusals honoured in flight, over SMPP: recipients who answer RET (or whose consent is withdrawn)
while a job runs get nothing more from it, whatever the job is doing then (sending, paused, waiting
for its A/B winner). Judged on what the simulator recorded: no part to a refused number later than
two seconds after its refusal was durable (the opt-out's recorded time), and the rows end
``opted_out`` / ``no_consent`` in the report and the counts."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import SimProcess, wait_for
from tests.integration.stack import Stack, assert_adds_up, numbers_csv, post_job, running_stack, wait_state
from ulak.consent import ONAY, RET, Consent, Consents
from ulak.optouts import OptOuts
from ulak.refusals import CONSENTED, NO_CONSENT, OPTED_IN, OPTED_OUT, Follower, RowCheck, Scope

MARGIN = 2.0  # seconds from a refusal made durable to its last part possibly sent
CONFIRMATION = "Listemizden çıkarıldınız. Tekrar katılmak için BASLA yazın."
TEXT = "Merhaba {ad}, kampanya başladı. Almak istemiyorsanız RET yazıp 4545'e gönderin"


def _campaign(stack: Stack, prefix: str) -> list[dict[str, Any]]:
    """What the SMSC took for *prefix*'s numbers, opt-out confirmations apart."""
    return [r for r in stack.records(prefix) if r["text"] != CONFIRMATION]


def _submitted(http: httpx.Client, job_id: str) -> int:
    return int(http.get(f"/v1/jobs/{job_id}").json()["counts"]["submitted"])


def _report(http: httpx.Client, job_id: str) -> dict[str, dict[str, str]]:
    text = http.get(f"/v1/jobs/{job_id}/report").text
    return {r["msisdn"]: r for r in csv.DictReader(io.StringIO(text))}


def _refused_at(stack: Stack, numbers: list[str], *, brand: str | None = None) -> dict[str, float]:
    """When each opt-out was made durable, once all of them are (the replies processor's work)."""
    store = OptOuts(stack.redis)

    def found() -> dict[str, float] | None:
        entries = {n: store.get(n, brand=brand) for n in numbers}
        return {n: e.at for n, e in entries.items() if e is not None} if all(entries.values()) else None

    result: dict[str, float] = wait_for(found, timeout=30, what=f"{len(numbers)} opt-outs recorded")
    return result


def _check(stack: Stack, http: httpx.Client, job_id: str, refused: dict[str, float], reason: str) -> int:
    """Nothing reached a refused number after its refusal (+ MARGIN); each of them is either sent
    before it or stopped with *reason*; the figures add up. Returns how many were stopped."""
    view = wait_state(http, job_id, "done", timeout=180)
    assert_adds_up(view)
    late = [
        (r["dst"], round(r["t"] - refused[r["dst"]], 2))
        for r in stack.sim.records()
        if r["dst"] in refused and r["t"] > refused[r["dst"]] + MARGIN and r["text"] != CONFIRMATION
    ]
    assert not late, late
    report = _report(http, job_id)
    sent_numbers = {r["dst"] for r in stack.sim.records() if r["text"] != CONFIRMATION}
    stopped = 0
    for number in refused:
        row = report[number]
        if number in sent_numbers:
            assert row["status"] == "acked", row
        else:
            assert row["status"] == reason and row["error"].startswith("stopped at"), row
            stopped += 1
    assert view["counts"][reason] == stopped
    return stopped


def test_refusals_stop_a_sending_a_paused_and_an_ab_job(ray_session: Any, tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--account", "test:secret", "--seed", "3")
    replies = {"optout_confirmation": CONFIRMATION, "followup_seconds": 1}
    with (
        running_stack(tmp_path, sim, tps=150, name="refusals", replies=replies) as stack,
        stack.client() as http,
    ):
        # 1. Sending: 3,000 rows at 150/s; 40 recipients answer RET and 10 more have their consent
        #    withdrawn by the API while it sends (the binds hold minutes of its parts then).
        numbers = [f"90532{i:07d}" for i in range(3000)]
        granted = [{"number": f"+{n}", "status": "ONAY"} for n in numbers]
        assert http.post("/v1/consents", json={"brand": "acme", "records": granted}).status_code == 201
        path = numbers_csv(tmp_path / "sending.csv", numbers)
        # Skipping the opt-out lists is for Ulak's own confirmations: no client may ask for it.
        forged = post_job(http, path, template=TEXT, confirms_optout="true")
        assert forged.status_code == 422 and forged.json()["field"] == "confirms_optout", forged.text
        forged = http.post("/v1/jobs", json={"uri": str(path), "template": TEXT, "confirms_optout": True})
        assert forged.status_code == 422 and forged.json()["field"] == "confirms_optout", forged.text
        job = post_job(http, path, template=TEXT, brand="acme", category="commercial").json()["id"]
        wait_for(lambda: _submitted(http, job) >= 450, timeout=60, what="450 rows sent")
        optouts = numbers[1500::35][:40]  # ahead of the sending: most, if not all, still unsent
        for n in optouts:
            sim.control(op="mo", system_id="test", source=n, dest="4545", text="RET")
        withdrawn = numbers[1510::140][:10]
        answer = http.post(
            "/v1/consents",
            json={"brand": "acme", "records": [{"number": f"+{n}", "status": "RET"} for n in withdrawn]},
        )
        assert answer.status_code == 201, answer.text
        consent_at = {n: c.at for n in withdrawn if (c := Consents(stack.redis).get(n, brand="acme"))}
        assert len(consent_at) == 10
        refused_at = _refused_at(stack, optouts)
        assert _check(stack, http, job, refused_at, "opted_out") >= 20
        confirmed_numbers = list(optouts)
        stopped = _report(http, job)
        for n in withdrawn:  # recorded when the API answered: that is when it was durable
            assert all(r["t"] <= consent_at[n] + MARGIN for r in stack.sim.records() if r["dst"] == n)
        reached = {r["dst"] for r in stack.sim.records() if r["text"] != CONFIRMATION}
        assert all(stopped[n]["status"] == ("acked" if n in reached else "no_consent") for n in withdrawn)
        no_consent = http.get(f"/v1/jobs/{job}").json()["counts"]["no_consent"]
        assert no_consent == sum(n not in reached for n in withdrawn) >= 5

        # 2. Paused: what was taken back from the binds, and the rest of the file, skip who refused
        #    while the job was paused; resumed, it sends to everyone else.
        numbers = [f"90533{i:07d}" for i in range(1200)]
        job = post_job(http, numbers_csv(tmp_path / "paused.csv", numbers), template=TEXT).json()["id"]
        wait_for(lambda: _submitted(http, job) >= 200, timeout=60, what="200 rows sent")
        assert http.post(f"/v1/jobs/{job}/pause").status_code == 200
        wait_state(http, job, "paused")
        before = len(_campaign(stack, "90533"))
        sent = {r["dst"] for r in _campaign(stack, "90533")}
        optouts = [n for n in numbers if n not in sent][::25][:30]
        for n in optouts:
            sim.control(op="mo", system_id="test", source=n, dest="4545", text="RET")
        refused_at = _refused_at(stack, optouts)
        confirmed_numbers += optouts
        assert len(_campaign(stack, "90533")) == before  # paused: nothing more sent
        assert http.post(f"/v1/jobs/{job}/resume").status_code == 200
        assert _check(stack, http, job, refused_at, "opted_out") == 30
        assert len({r["dst"] for r in _campaign(stack, "90533")}) == 1200 - 30

        # 3. Test then winner: recipients of the rest refuse (on the brand's list) while the job
        #    waits for its decision; the rest goes without them.
        numbers = [f"90532{i:07d}" for i in range(5000, 5600)]
        variants = [{"name": "A", "template": "A: " + TEXT}, {"name": "B", "template": "B: " + TEXT}]
        options = {"variants": json.dumps(variants), "test_share": "0.3", "decide_after_minutes": "0.2"}
        job = post_job(
            http, numbers_csv(tmp_path / "ab.csv", numbers), template=TEXT, brand="acme", **options
        ).json()["id"]
        wait_for(
            lambda: "winner" in str(http.get(f"/v1/jobs/{job}").json()["waiting"] or ""),
            timeout=60,
            what="the decision period",
        )
        rest = [n for n, r in _report(http, job).items() if r["phase"] == "rest"]
        optouts = rest[::20][:15]
        answer = http.post("/v1/optouts", json={"numbers": [f"+{n}" for n in optouts], "brand": "acme"})
        assert answer.status_code == 201, answer.text
        refused_at = _refused_at(stack, optouts, brand="acme")
        assert _check(stack, http, job, refused_at, "opted_out") == 15

        # Who opted out by reply got one confirmation each, from the short code, though on the list;
        # RET sent again confirms nothing again; an opt-in then an opt-out confirms once more.
        by_reply = confirmed_numbers
        again = by_reply[:3]
        for n in again:  # in other words: the same text within minutes is the SMSC resending a part
            sim.control(op="mo", system_id="test", source=n, dest="4545", text="ret, dedim!")
        sim.control(op="mo", system_id="test", source=by_reply[3], dest="4545", text="BASLA")
        wait_for(lambda: OptOuts(stack.redis).get(by_reply[3], brand=None) is None, timeout=30, what="opt-in")
        sim.control(op="mo", system_id="test", source=by_reply[3], dest="4545", text="RET yine")
        wait_for(lambda: OptOuts(stack.redis).get(by_reply[3], brand=None), timeout=30, what="opt-out")
        expected = dict.fromkeys(by_reply, 1) | {by_reply[3]: 2}

        def confirmations() -> dict[str, int]:
            return dict(Counter(r["dst"] for r in stack.sim.records() if r["text"] == CONFIRMATION))

        with contextlib.suppress(AssertionError):
            wait_for(lambda: confirmations() == expected, timeout=60, what="confirmations")
        got = confirmations()
        assert got == expected, ({n: (got.get(n), k) for n, k in expected.items() if got.get(n) != k}, got)
        assert {r["src"] for r in stack.sim.records() if r["text"] == CONFIRMATION} == {"4545"}
        jobs = http.get("/v1/jobs", params={"limit": 50}).json()["jobs"]
        made = [j for j in jobs if j["options"].get("confirms_optout")]
        assert made and all(j["options"]["name"] == "opt-out confirmations" for j in made)


def test_a_reader_keeps_only_the_refusals_that_still_stand(redis_client: Any) -> None:
    """The lists decide: a number that opted in again, or whose consent is ONAY again, is not stopped
    by its earlier refusal still in the stream; a brand's refusal names its brand."""
    optouts, consents = OptOuts(redis_client), Consents(redis_client)
    optouts.add(["905321111111", "905321111112"], brand=None, source="api")
    optouts.add(["905321111115"], brand="acme", source="mo")
    optouts.remove(["905321111112"], brand=None)
    consents.record(
        [Consent("905321111113", ONAY, 1.0, "x"), Consent("905321111114", ONAY, 1.0, "x")], brand=None
    )
    consents.record(
        [Consent("905321111113", RET, 2.0, "x"), Consent("905321111114", RET, 2.0, "x")], brand=None
    )
    consents.record([Consent("905321111113", ONAY, 3.0, "x")], brand=None)
    got = {(r.kind, r.brand or "", n) for r in Follower().read(redis_client) for n in r.numbers}
    assert got == {
        (NO_CONSENT, "", "905321111114"),
        (OPTED_OUT, "", "905321111111"),
        (OPTED_OUT, "acme", "905321111115"),
        # their undoing, for the binds to forget what they remember: standing ones only
        (OPTED_IN, "", "905321111112"),
        (CONSENTED, "", "905321111113"),
    }
    follower = Follower()
    follower.read(redis_client)
    assert follower.read(redis_client) == []  # read once


def test_a_batch_is_checked_against_every_list_that_stops_its_scope(redis_client: Any) -> None:
    """``RowCheck`` (the runner's check of each batch it reads): a global opt-out stops every job, a
    brand's only that brand's, and a commercial job's rows stop unless their consent is ONAY (the
    opt-out the reason given first); what the lists do not name is not stopped."""
    optouts, consents = OptOuts(redis_client), Consents(redis_client)
    numbers = [f"90532111{i:04d}" for i in range(2_000)]
    optouts.add(numbers[10:12], brand=None, source="api")
    optouts.add(numbers[20:22], brand="acme", source="mo")
    consents.record([Consent(n, ONAY, 1.0, "x") for n in numbers[:1_000]], brand="acme")
    consents.record([Consent(numbers[11], RET, 2.0, "x")], brand="acme")
    informational = RowCheck(redis_client, Scope(brand="acme"))
    assert informational.refused(numbers) == {10: OPTED_OUT, 11: OPTED_OUT, 20: OPTED_OUT, 21: OPTED_OUT}
    assert RowCheck(redis_client, Scope(brand="other")).refused(numbers) == {10: OPTED_OUT, 11: OPTED_OUT}
    commercial = RowCheck(redis_client, Scope(brand="acme", commercial=True)).refused(numbers)
    assert commercial == {
        10: OPTED_OUT,
        11: OPTED_OUT,
        20: OPTED_OUT,
        21: OPTED_OUT,
        **dict.fromkeys(range(1_000, 2_000), NO_CONSENT),
    }
    assert RowCheck(redis_client, Scope(brand="acme", optouts=False)).refused(numbers) == {}
