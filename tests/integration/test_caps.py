"""Frequency caps (``ulak.caps``).

The gate's script in a real Redis against a model written from the module's docstring, over random
admits, releases and clock moves by jobs of two brands, commercial or not; then, over SMPP with an
injected clock (``jobs.clock: offset``), jobs of one brand to overlapping audiences: each recipient
gets one message a day from them, deferred ones go when the cap allows, refused ones end
``frequency_capped``, two jobs at once cannot both get through, and a transactional job is not
capped. Judged on what the simulator recorded."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from tests.helpers import SimProcess, wait_for
from tests.integration.stack import (
    Stack,
    assert_adds_up,
    campaign_rows,
    post_job,
    running_stack,
    wait_state,
)
from ulak.caps import BRAND, COMMERCIAL, Cap, Gate, rules_for
from ulak.clock import set_offset

CAPS = {"brands": {"acme": ["1/24h"], "bolt": ["2/1h"]}, "commercial": ["3/1d"]}
BRAND_CAPS = {"acme": [Cap.parse("1/24h")], "bolt": [Cap.parse("2/1h")]}
COMMERCIAL_CAPS = [Cap.parse("3/1d")]
LONGEST = 86400
NUMBERS = ["905320000001", "905320000002"]
JOBS = [
    ("j1", "acme", True),
    ("j2", "acme", False),
    ("j3", "bolt", True),
    ("j4", None, True),
    ("j5", "bolt", False),
]


class GateModel(RuleBasedStateMachine):
    """Each number's history as a list of (job, row, brand, commercial, at); a message passes when,
    for every cap of its job, fewer than ``count`` of the messages that cap counts are younger than
    its window, and then it is recorded, once."""

    client: redis.Redis

    @initialize()
    def start(self) -> None:
        self.client.flushall()
        self.now = 1_700_000_000.0
        self.history: dict[str, list[tuple[str, int, str | None, bool, float]]] = {n: [] for n in NUMBERS}
        self.gates = {
            job: Gate(
                self.client,
                rules_for(
                    commercial_caps=COMMERCIAL_CAPS, brand_caps=BRAND_CAPS, brand=brand, commercial=com
                ),
                job_id=job,
                brand=brand,
                commercial=com,
                keep=LONGEST,
            )
            for job, brand, com in JOBS
        }

    def _free_at(self, job: str, number: str) -> float | None:
        """When the model lets *job*'s message to *number* go (None: now)."""
        _, brand, commercial = next(j for j in JOBS if j[0] == job)
        rules = rules_for(
            commercial_caps=COMMERCIAL_CAPS, brand_caps=BRAND_CAPS, brand=brand, commercial=commercial
        )
        free = None
        for cap_rule in rules:
            times = sorted(
                at
                for (_, _, b, c, at) in self.history[number]
                if at > self.now - cap_rule.cap.seconds
                and (c if cap_rule.counts == COMMERCIAL else b == brand)
            )
            assert cap_rule.counts in (BRAND, COMMERCIAL)
            if len(times) >= cap_rule.cap.count:
                at = times[len(times) - cap_rule.cap.count] + cap_rule.cap.seconds
                free = at if free is None else max(free, at)
        return free

    @rule(
        job=st.sampled_from([j[0] for j in JOBS]),
        picks=st.lists(st.tuples(st.sampled_from(NUMBERS), st.integers(0, 2)), min_size=1, max_size=4),
        record=st.booleans(),
    )
    def admit(self, job: str, picks: list[tuple[str, int]], record: bool) -> None:
        picks = list(dict.fromkeys(picks))  # a job has each row once
        capped = self.gates[job].admit(picks, self.now, record=record)
        _, brand, commercial = next(j for j in JOBS if j[0] == job)
        for i, (number, row) in enumerate(picks):
            known = any(h[0] == job and h[1] == row for h in self.history[number])
            free = None if known else self._free_at(job, number)
            assert capped.get(i) == free, (job, number, row, capped, free)
            if free is None and not known and record:
                self.history[number].append((job, row, brand, commercial, self.now))

    @rule(job=st.sampled_from([j[0] for j in JOBS]), number=st.sampled_from(NUMBERS), row=st.integers(0, 3))
    def release(self, job: str, number: str, row: int) -> None:
        self.gates[job].release([(number, row)])
        self.history[number] = [h for h in self.history[number] if (h[0], h[1]) != (job, row)]

    @rule(seconds=st.sampled_from([1, 600, 3599, 3600, 86399, 86400, 2 * 86400]))
    def later(self, seconds: int) -> None:
        self.now += seconds
        for number, entries in self.history.items():  # what the script trims, the model forgets
            self.history[number] = [h for h in entries if h[4] > self.now - LONGEST]


def test_the_gate_is_its_model(redis_client: redis.Redis) -> None:
    GateModel.client = redis_client
    GateModel.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
    GateModel.TestCase().runTest()


def test_a_restarted_redis_forgets_the_scripts_not_the_counts(redis_client: redis.Redis) -> None:
    rules = rules_for(commercial_caps=[], brand_caps=BRAND_CAPS, brand="acme", commercial=True)
    job = f"j-{uuid.uuid4().hex[:6]}"
    gate = Gate(redis_client, rules, job_id=job, brand="acme", commercial=True, keep=LONGEST)
    assert gate.admit([("905329999001", 1)], 1000.0) == {}
    redis_client.script_flush()
    assert gate.admit([("905329999001", 2)], 1001.0) == {0: 1000.0 + 86400}
    assert gate.admit([("905329999001", 1)], 1002.0) == {}  # the same message again: already counted


# ------------------------------------------------------------------------------------ over SMPP

DAY = 86400
TEXT = "{ad}, {kampanya} kampanyası başladı. Almak istemiyorsanız RET yazıp 4545'e gönderin"


def _got(stack: Stack, campaign: str) -> Counter[str]:
    """How many messages of *campaign* each number got, by what the simulator recorded."""
    return Counter(r["dst"] for r in stack.sim.records() if f" {campaign} kampanya" in r["text"])


def _report(http: httpx.Client, job_id: str) -> dict[str, dict[str, str]]:
    text = http.get(f"/v1/jobs/{job_id}/report").text
    return {r["msisdn"]: r for r in csv.DictReader(io.StringIO(text))}


def _job(http: httpx.Client, path: Path, **options: Any) -> str:
    answer = post_job(http, path, template=TEXT, brand="acme", **options)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def test_one_message_a_day_across_jobs(ray_session: Any, tmp_path: Path) -> None:
    sim = SimProcess(tmp_path, "--account", "test:secret", "--seed", "5")
    with (
        running_stack(
            tmp_path, sim, tps=200, name="caps", jobs={"clock": "offset"}, frequency_caps=CAPS
        ) as stack,
        stack.client() as http,
    ):
        first = [f"90532{i:07d}" for i in range(600)]
        second = [f"90532{i:07d}" for i in range(300, 900)]  # 300..599 in both
        both = set(first) & set(second)
        fresh = [f"90533{i:07d}" for i in range(200)]
        records = [{"number": f"+{n}", "status": "ONAY"} for n in [*first, *second, *fresh]]
        assert http.post("/v1/consents", json={"brand": "acme", "records": records}).status_code == 201

        # A commercial job of acme reaches all 600 once.
        a = _job(http, campaign_rows(tmp_path / "a.csv", first, "Kış"), category="commercial")
        assert_adds_up(wait_state(http, a, "done", timeout=120))
        assert _got(stack, "Kış") == dict.fromkeys(first, 1)

        # A second one to 600, 300 of them the same people: those wait for the cap (1/24h), as its
        # dry run said, the rest go now.
        b_rows = campaign_rows(tmp_path / "b.csv", second, "Bahar")
        dry = wait_state(http, _job(http, b_rows, category="commercial", dry_run=True), "done", timeout=60)
        assert dry["capped_at_start"] == 300 and dry["counts"]["submitted"] == 0, dry
        b = _job(http, b_rows, category="commercial")

        def waits() -> dict[str, Any] | None:
            view: dict[str, Any] = http.get(f"/v1/jobs/{b}").json()
            capped = "frequency cap" in (view["waiting"] or "")
            return view if capped and view["counts"]["acked"] == 300 else None

        view = wait_for(waits, timeout=120, what="the rest sent, the overlap waiting for its cap")
        assert view["state"] == "sending", view
        assert "300 messages wait" in view["waiting"]
        assert_adds_up(view)
        assert _got(stack, "Bahar") == dict.fromkeys(set(second) - both, 1)

        # A transactional job (informational: not capped by default) reaches them at once.
        t = _job(http, campaign_rows(tmp_path / "t.csv", sorted(both)[:50], "Bilgi"))
        assert_adds_up(wait_state(http, t, "done", timeout=120))
        assert http.get(f"/v1/jobs/{t}").json()["capped_at_start"] is None
        assert len(_got(stack, "Bilgi")) == 50

        # Refused instead of deferred: by the job's choice, or because the cap would hold it past
        # its validity.
        r = _job(
            http,
            campaign_rows(tmp_path / "r.csv", sorted(both)[:25], "Yaz"),
            category="commercial",
            frequency_cap="refuse",
        )
        v = _job(
            http,
            campaign_rows(tmp_path / "v.csv", sorted(both)[25:50], "Güz"),
            category="commercial",
            validity_minutes=60,
        )
        for job in (r, v):
            view = wait_state(http, job, "done", timeout=120)
            assert_adds_up(view)
            assert view["counts"]["frequency_capped"] == 25 and view["counts"]["submitted"] == 0, view
            statuses = {row["status"] for row in _report(http, job).values()}
            assert statuses == {"frequency_capped"}
        assert not _got(stack, "Yaz") and not _got(stack, "Güz")

        # Two jobs at once to the same 200 new people, refusing capped messages: the cap is counted
        # as they are handed, atomically, so each person gets exactly one of the two.
        e1 = _job(
            http,
            campaign_rows(tmp_path / "e1.csv", fresh, "Ekim"),
            category="commercial",
            frequency_cap="refuse",
        )
        e2 = _job(
            http,
            campaign_rows(tmp_path / "e2.csv", fresh, "Kasım"),
            category="commercial",
            frequency_cap="refuse",
        )
        views = [wait_state(http, job, "done", timeout=120) for job in (e1, e2)]
        for view in views:
            assert_adds_up(view)
        assert sum(v["counts"]["frequency_capped"] for v in views) == 200
        assert sum(v["counts"]["submitted"] for v in views) == 200
        assert _got(stack, "Ekim") + _got(stack, "Kasım") == dict.fromkeys(fresh, 1)

        # A day later the cap lets the overlap go: the second job finishes, each of them got one
        # message of it, after the clock moved.
        assert _got(stack, "Bahar") == dict.fromkeys(set(second) - both, 1)
        moved_at = stack.sim.records()[-1]["t"]
        set_offset(stack.redis, DAY + 60)
        view = wait_state(http, b, "done", timeout=120)
        assert_adds_up(view)
        assert view["counts"]["submitted"] == 600 and view["counts"]["frequency_capped"] == 0
        assert _got(stack, "Bahar") == dict.fromkeys(second, 1)
        late = [r for r in stack.sim.records() if " Bahar kampanya" in r["text"] and r["dst"] in both]
        assert all(r["t"] >= moved_at for r in late)
        assert {row["status"] for row in _report(http, b).values()} <= {"acked"}


def test_a_message_leaves_a_window_the_moment_it_is_that_old(redis_client: redis.Redis) -> None:
    rules = rules_for(commercial_caps=[], brand_caps=BRAND_CAPS, brand="bolt", commercial=False)
    gate = Gate(
        redis_client, rules, job_id=f"j-{uuid.uuid4().hex[:6]}", brand="bolt", commercial=False, keep=LONGEST
    )
    t = 1_800_000_000.0
    assert gate.admit([("905329999101", 1), ("905329999101", 2)], t) == {}  # bolt: 2/1h
    assert gate.admit([("905329999101", 3)], t + 3599) == {0: t + 3600}
    assert gate.admit([("905329999101", 3)], t + 3600) == {}
