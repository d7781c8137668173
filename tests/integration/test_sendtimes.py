"""Send-time optimisation end to end (``send_time: optimized``; ``ulak.sendtime``).

Two simulated audiences, each person with a seeded coin of their own:

* *habits*: each person reads their messages at one hour of the day (10:00, 14:00 or 19:00). A
  message that lands in that hour is clicked with probability 0.6, any other with 0.1;
* *no habits*: each person clicks with probability 0.3 whenever the message lands.

A first campaign reaches both; each person clicks it at their hour (the habits) or at a random one
(no habits) through the redirect service, the clock moved there (``jobs.clock: offset``). Then one
optimised job per audience: its plan (in its dry run's preview) puts each habits person at their
hour and keeps a control group at random hours; the clock walks through the next day hour by hour,
and each message that lands is clicked by the audience's model. The habits job's summary shows a
lift whose 95 % interval excludes zero; the no-habits one's includes it. Every input is seeded
(numbers, coins, the split), so the outcome is the same on every run.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cluster.engagement import events
from cluster.engagement.sendtimes import Folder
from cluster.jobs.options import JobOptions
from cluster.jobs.store import JobStore
from ingest.collect import ACCEPTED_FILE
from tests.helpers import ApiProcess, SimProcess, wait_for
from tests.integration.stack import Stack, assert_adds_up, numbers_csv, post_job, running_stack, wait_state
from ulak import keys, sendtime
from ulak.clock import set_offset
from ulak.jobfiles import JobFiles
from ulak.redis_server import free_port
from ulak.settings import Settings

ISTANBUL = ZoneInfo("Europe/Istanbul")
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
HABIT_HOURS = (10, 14, 19)
WINDOW = "09:00-22:00"
N = 600


def _people() -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
    """The habits audience (number -> their hour), the no-habits one (number -> the hour they
    happened to click the first campaign at), and every person's coin in [0, 1)."""
    rng = random.Random(20261205)
    habits = {f"90532{i:07d}": rng.choice(HABIT_HOURS) for i in range(N)}
    none = {f"90533{i:07d}": rng.randrange(9, 22) for i in range(N)}
    coins = {n: rng.random() for n in [*habits, *none]}
    return habits, none, coins


def _at(day: datetime, hour: int, minute: int = 0) -> float:
    return day.replace(hour=hour, minute=minute).timestamp()


class _Clicker:
    """Follows the links the SMSC received, as the people they went to."""

    def __init__(self, stack: Stack, web: httpx.Client, port: int) -> None:
        self.stack = stack
        self.web = web
        self.link = re.compile(re.escape(f"http://127.0.0.1:{port}/") + r"([0-9A-Za-z]{8})\b")
        self.seen = 0

    def received(self, campaign: str) -> dict[str, str]:
        """Number -> its link, of the messages of *campaign* the SMSC has."""
        out = {}
        for r in self.stack.sim.records():
            if campaign in r["text"]:
                found = self.link.search(r["text"])
                assert found, r["text"]
                out[r["dst"]] = found[1]
        return out

    def click(self, code: str) -> None:
        answer = self.web.get(f"/{code}", headers={"user-agent": PHONE})
        assert answer.status_code == 302, answer.text


def _summary(http: httpx.Client, job_id: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        answer = http.get(f"/v1/jobs/{job_id}/summary")
        return answer.json() if answer.status_code == 200 else None

    found: dict[str, Any] = wait_for(ready, timeout=60, what="the summary")
    return found


def test_optimised_times_beat_random_ones_only_where_people_have_habits(
    ray_session: Any, tmp_path: Path
) -> None:
    habits, none, coins = _people()
    sim = SimProcess(tmp_path, "--seed", "7")
    port = free_port()
    # Day 0 at 08:05 in Istanbul, a fixed +03:00 (no DST): the first campaign goes, then its clicks.
    day0 = (datetime.now(ISTANBUL) + timedelta(days=2)).replace(minute=5, second=0, microsecond=0)
    with running_stack(
        tmp_path,
        sim,
        tps=300,
        name="sendtimes",
        jobs={"clock": "offset"},
        links={"port": port, "scanner_seconds": 0},
    ) as stack:
        redirect = ApiProcess(tmp_path, stack.config_dir, stack.env, port=port, module="api.redirect")
        try:
            with (
                stack.client() as http,
                httpx.Client(base_url=redirect.url, follow_redirects=False, timeout=30) as web,
            ):
                clicker = _Clicker(stack, web, port)
                set_offset(stack.redis, _at(day0, 8, 5) - time.time())
                first = post_job(
                    http,
                    numbers_csv(tmp_path / "first.csv", [*habits, *none]),
                    template="Ilk {ad}: {link}",
                    link_url="https://shop.example/ilk",
                )
                assert first.status_code == 202, first.text
                assert_adds_up(wait_state(http, first.json()["id"], "done", timeout=120))
                links = clicker.received("Ilk ")
                assert len(links) == 2 * N
                hour_of = {**habits, **none}
                for hour in range(9, 22):
                    set_offset(stack.redis, _at(day0, hour, 10) - time.time())
                    time.sleep(0.25)  # the redirect service reads the offset every 0.1 s
                    for number in [n for n, h in hour_of.items() if h == hour]:
                        clicker.click(links[number])

                # The next day at 08:05: each audience's optimised job, planned (the model is
                # refreshed first), first as a dry run: the preview shows the plan.
                day1 = day0 + timedelta(days=1)
                set_offset(stack.redis, _at(day1, 8, 5) - time.time())
                options = {
                    "template": "Yeni {ad}: {link}",
                    "link_url": "https://shop.example/yeni",
                    "send_time": "optimized",
                    "send_window": WINDOW,
                    "send_time_control": 0.2,
                    "split_seed": "sendtimes-test",
                }
                dry = post_job(http, numbers_csv(tmp_path / "h.csv", list(habits)), dry_run=True, **options)
                assert dry.status_code == 202, dry.text
                plan = wait_state(http, dry.json()["id"], "done", timeout=120)["send_plan"]
                assert plan["with_history"] == N and plan["horizon_hours"] == 24
                chosen = Counter[int]()
                for slot in plan["hours"]:
                    local = datetime.fromisoformat(slot["hour"]).astimezone(ISTANBUL).hour
                    assert 9 <= local < 22, plan  # never outside the window
                    chosen[local] += slot["optimized"]
                assert sum(s["optimized"] + s["control"] for s in plan["hours"]) == N
                assert {h for h, n in chosen.items() if n} == set(HABIT_HOURS), chosen  # the habits

                jobs = {}
                for name, audience in (("habits", habits), ("none", none)):
                    created = post_job(http, numbers_csv(tmp_path / f"{name}.csv", list(audience)), **options)
                    assert created.status_code == 202, created.text
                    jobs[name] = created.json()["id"]
                for job_id in jobs.values():
                    wait_for(
                        lambda j=job_id: http.get(f"/v1/jobs/{j}").json()["send_plan"],
                        timeout=120,
                        what="the plan",
                    )
                    view = http.get(f"/v1/jobs/{job_id}").json()
                    assert view["counts"]["submitted"] == 0, view  # 08:05: nothing before 09:00

                # The day, hour by hour: what lands is clicked by each audience's model.
                clicked: set[str] = set()
                landed_at: dict[str, int] = {}
                for hour in range(9, 22):
                    set_offset(stack.redis, _at(day1, hour) + 30 - time.time())
                    due = {
                        name: sum(
                            s["optimized"] + s["control"]
                            for s in http.get(f"/v1/jobs/{job_id}").json()["send_plan"]["hours"]
                            if datetime.fromisoformat(s["hour"]).astimezone(ISTANBUL).hour <= hour
                        )
                        for name, job_id in jobs.items()
                    }
                    wait_for(
                        lambda due=due: all(
                            http.get(f"/v1/jobs/{jobs[name]}").json()["counts"]["acked"] >= n
                            for name, n in due.items()
                        ),
                        timeout=60,
                        what=f"the messages planned up to {hour}:00",
                    )
                    for number, code in clicker.received("Yeni ").items():
                        if number in landed_at:
                            continue
                        landed_at[number] = hour
                        if number in habits:
                            clicks = coins[number] < (0.6 if habits[number] == hour else 0.1)
                        else:
                            clicks = coins[number] < 0.3
                        if clicks:
                            clicker.click(code)
                            clicked.add(number)
                    assert len(landed_at) == sum(due.values())
                assert len(landed_at) == 2 * N
                for job_id in jobs.values():
                    view = wait_state(http, job_id, "done", timeout=120)
                    assert_adds_up(view)
                    assert view["counts"]["submitted"] == N

                # Every habits recipient outside the control group got it at their hour.
                lifts = {name: _summary(http, job_id)["send_time"] for name, job_id in jobs.items()}
                model = http.get("/v1/send-times").json()
                assert model["events"] >= 2 * N and model["prefixes"] == 2, model
            habit = lifts["habits"]
            assert habit["optimized"]["recipients"] + habit["control"]["recipients"] == N
            assert 0.1 < habit["control"]["recipients"] / N < 0.3
            assert habit["clicks"]["low"] > 0, habit
            assert habit["clicks"]["optimized"] > 0.5 and habit["clicks"]["control"] < 0.25, habit
            no_habit = lifts["none"]
            assert no_habit["clicks"]["low"] <= 0 <= no_habit["clicks"]["high"], no_habit
            # The groups' figures are what the people did.
            assert habit["optimized"]["clicked"] + habit["control"]["clicked"] == len(clicked & set(habits))
            on_time = [n for n in habits if landed_at[n] == habits[n]]
            assert len(on_time) >= habit["optimized"]["recipients"]
            assert habit["operators"]["tcell"]["clicks"] == habit["clicks"]
        finally:
            redirect.stop()


# ---------------------------------------------------------------------------------- the model


def test_the_model_counts_each_hour_and_fades_old_habits(redis_client: redis.Redis) -> None:
    numbers = ["905320000001", "905320000002", "4915112345678"]
    sendtime.fold(redis_client, numbers, [9, 9, 20], prefix_digits=5)
    sendtime.fold(redis_client, numbers[:1], [21], prefix_digits=5)
    got = sendtime.histories(redis_client, [*numbers, "905329999999"])
    assert got[0].tolist() == [0] * 9 + [1] + [0] * 11 + [1] + [0] * 2
    assert got[1][9] == 1 and got[1].sum() == 1
    assert got[2][20] == 1 and got[2].sum() == 1
    assert got[3].sum() == 0  # never seen
    priors = sendtime.Priors.read(redis_client, digits=5)
    assert priors.by_prefix["90532"][9] == 2 and priors.by_prefix["90532"][21] == 1
    assert priors.audience.sum() == 4

    # 255 at one hour: the next engagement halves all 24 first (old habits fade).
    sendtime.fold(redis_client, ["905320000003"] * 255, [10] * 255, prefix_digits=5)
    sendtime.fold(redis_client, ["905320000003"] * 3, [11] * 3, prefix_digits=5)
    faded = sendtime.histories(redis_client, ["905320000003"])[0]
    assert faded[10] == 255 and faded[11] == 3
    sendtime.fold(redis_client, ["905320000003"], [10], prefix_digits=5)
    faded = sendtime.histories(redis_client, ["905320000003"])[0]
    assert faded[10] == 128 and faded[11] == 1

    # One number's history outweighs the prior once it has some; none: the prefix's, then everyone's.
    weight = 4.0
    priors = sendtime.Priors.read(redis_client, digits=5)
    prior = priors.of(["905320000009", "3312345678"], weight=weight)
    assert int(np.argmax(prior[0])) == 10  # the 90532 numbers engage at 10 most
    assert np.allclose(prior[1], priors.audience / priors.audience.sum())
    own = np.zeros((1, 24), dtype=np.uint8)
    own[0, 19] = 5  # more than the prior weight: their own outweighs the prior all at 10
    assert int(np.argmax(sendtime.scores(own, prior[:1], weight=weight))) == 19
    assert redis_client.hlen(keys.SENDTIME_PRIORS) >= 4


MODEL_NUMBERS = ("905320000001", "905320000002", "905421234567", "4915112345678")


class FoldModel(RuleBasedStateMachine):
    """The fold script against 24 plain counters a number: +1, and all halved first when the count
    about to grow is at 255; the prefixes' sums never halve."""

    client: redis.Redis

    @initialize()
    def empty(self) -> None:
        self.client.flushall()
        self.counts = {n: [0] * 24 for n in MODEL_NUMBERS}
        self.priors: Counter[tuple[str, int]] = Counter()

    @rule(
        events=st.lists(
            st.tuples(st.sampled_from(MODEL_NUMBERS), st.integers(0, 23), st.integers(1, 200)),
            min_size=1,
            max_size=6,
        )
    )
    def fold(self, events: list[tuple[str, int, int]]) -> None:
        numbers = [n for n, _, times in events for _ in range(times)]
        hours = [h for _, h, times in events for _ in range(times)]
        sendtime.fold(self.client, numbers, hours, prefix_digits=5)
        for number, hour in zip(numbers, hours, strict=True):
            counts = self.counts[number]
            if counts[hour] >= 255:
                counts[:] = [c // 2 for c in counts]
            counts[hour] += 1
            self.priors[number[:5], hour] += 1

    @invariant()
    def same(self) -> None:
        got = sendtime.histories(self.client, list(MODEL_NUMBERS))
        assert got.tolist() == [self.counts[n] for n in MODEL_NUMBERS]
        priors = sendtime.Priors.read(self.client, digits=5)
        for (prefix, hour), n in self.priors.items():
            assert priors.by_prefix[prefix][hour] == n


def test_the_fold_is_its_model(redis_client: redis.Redis) -> None:
    FoldModel.client = redis_client
    FoldModel.TestCase.settings = settings(max_examples=40, stateful_step_count=12, deadline=None)
    FoldModel.TestCase().runTest()


def test_a_refresh_folds_each_engagement_once_wherever_it_is_kept(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = Settings(jobs={"data_dir": str(tmp_path / "jobs")})
    folder = JobFiles.configured(settings.jobs).new("j1")
    pq.write_table(
        pa.table({"row": [2, 5, 9], "msisdn": ["905320000001", "905320000002", "994501234567"]}),
        folder.open_output(ACCEPTED_FILE),
    )
    JobStore(redis_client).create("j1", options=JobOptions(template="x"), source="f.csv", directory=folder)
    istanbul_10 = datetime(
        2027, 1, 4, 7, 15, tzinfo=ZoneInfo("UTC")
    ).timestamp()  # 10:15 Istanbul, 11:15 Baku

    def click(row: int, at: float, *, bot: bool = False) -> None:
        fields = {"t": int(at * 1000), "row": row, "bot": int(bot), "ua": "x", "ip": "h"}
        redis_client.xadd(keys.job_click_events("j1"), fields)  # type: ignore[arg-type]

    click(2, istanbul_10)
    click(9, istanbul_10)
    click(5, istanbul_10, bot=True)  # a scanner: not engagement
    redis_client.xadd(
        keys.MO_MESSAGES,
        {"number": "905320000002", "kind": "reply", "received": f"{istanbul_10 + 3 * 3600}", "text": "?"},
    )
    redis_client.xadd(keys.MO_MESSAGES, {"number": "905320000001", "kind": "optout", "received": "1"})
    found = Folder(redis_client, settings)
    assert found.refresh() == {"clicks": 2, "conversions": 0, "replies": 1}
    got = sendtime.histories(redis_client, ["905320000001", "905320000002", "994501234567"])
    assert np.flatnonzero(got[0]).tolist() == [10]  # in Istanbul's time
    assert np.flatnonzero(got[1]).tolist() == [13]  # the reply, three hours later
    assert np.flatnonzero(got[2]).tolist() == [11]  # in Baku's
    assert found.refresh() == {"clicks": 0, "conversions": 0, "replies": 0}  # each once

    # Moved to the job's folder as Parquet, the old ones read again from there: still once each.
    click(5, istanbul_10 + 3600)
    moved = events.compact(redis_client, "j1", folder, older_than=0, now=lambda: time.time() + 60)
    assert sum(moved.values()) == 4
    click(2, istanbul_10 + 3600)
    assert found.refresh() == {"clicks": 2, "conversions": 0, "replies": 0}
    got = sendtime.histories(redis_client, ["905320000001", "905320000002"])
    assert got[0].tolist()[10:12] == [1, 1] and got[1].tolist()[11] == 1
    assert redis_client.hget(keys.SENDTIME_STATS, "events") == b"5"
