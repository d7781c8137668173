"""Chaos through the real stack: uvicorn, Ray, Redis and the simulator over TCP, with its own stack.

While a mixed campaign is sent, a seeded schedule pauses and resumes it at random moments, drops the
SMSC's connections, kills one bind actor, stops the SMSC (in one variant with SIGKILL) and starts it
again on the same port (with new message ids, as a real one would), restarts Redis, crashes it
(SIGKILL, its file cut back a second), kills an operator's throttle (Ray restarts it), restarts the
API, and, in one variant, cancels the job. Nobody restarts anything: the job must reach a terminal
state by itself, with every row in exactly one final state (none in flight, none pending in a done
job), no part twice at the SMSC, and a report that agrees with what the SMSC recorded.
"""

from __future__ import annotations

import csv
import io
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from tests.helpers import ApiProcess, SimProcess, crash_redis, wait_for
from tests.integration.stack import (
    SIM_ARGS,
    TEMPLATE,
    Stack,
    assert_adds_up,
    assert_report_agrees,
    mixed_campaign,
    no_duplicates,
    post_job,
    restart_smsc,
    running_stack,
    wait_state,
)
from ulak.dispatch.bind import Backoff


@pytest.fixture(scope="module")
def chaos_stack(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("chaos")
    sim = SimProcess(workdir, *SIM_ARGS, "--seed", "5")
    # tps: a job long enough for its faults; AOF: Redis is restarted mid-job.
    with running_stack(workdir, sim, tps=150, name="chaos", appendonly=True) as running:
        yield running


def records_of(stack: Stack, prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
    return [r for r in stack.sim.records() if r["dst"].startswith(prefixes)]


@pytest.mark.parametrize(
    ("seed", "cancel"),
    # Seed 2 (~48 s: another order of the same faults) runs with the soaks, to keep the suite near 20 min.
    [(1, False), pytest.param(2, False, marks=pytest.mark.soak), (3, True)],
)
def test_a_job_under_chaos_ends_by_itself_with_every_row_accounted_for(
    chaos_stack: Stack, seed: int, cancel: bool
) -> None:
    stack = chaos_stack
    rng = random.Random(seed)
    prefixes = (f"90532{seed}", f"90542{seed}")  # both operators: three binds
    path = stack.workdir / f"chaos-{seed}.csv"
    mixed_campaign(path, prefixes, 6000)
    faults: list[str] = []
    with stack.client() as http:
        job_id = post_job(http, path, template=TEMPLATE).json()["id"]
        wait_for(lambda: len(records_of(stack, prefixes)) > 100, timeout=60, what="sending to start")
        pending = [
            "kill_bind",
            "restart_smsc",
            "restart_redis",
            "crash_redis",
            "kill_throttle",
            "restart_api",
        ]
        # The append-only file's size a moment ago: a crash cuts back to it. Never to before the
        # last resume was surely in the file (Redis may answer a write up to two seconds before it
        # writes it, while an fsync lags): that is the API's write, answered to the user, which the
        # crash would lose too (only a bind's writes are journaled; appendfsync always keeps all).
        aof: list[tuple[float, int]] = []
        resumed_at = 0.0
        rng.shuffle(pending)
        pending += ["cancel"] if cancel else []  # last: the job ends with it
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            got = http.get(f"/v1/jobs/{job_id}")
            assert got.status_code == 200, (got.status_code, got.text, faults)
            state = got.json()["state"]
            if state in ("done", "failed", "cancelled"):
                break
            time.sleep(rng.uniform(0.2, 0.8))
            aof.append((time.monotonic(), stack.redis_server.aof.stat().st_size))
            action = rng.choice(["pause", "drop", "nothing", *pending[:1] * 2])
            faults.append(action)
            if action == "pause" and http.post(f"/v1/jobs/{job_id}/pause").status_code == 200:
                time.sleep(rng.uniform(0.1, 1.0))
                resumed = http.post(f"/v1/jobs/{job_id}/resume")
                assert resumed.status_code == 200, resumed.text
                resumed_at = time.monotonic()
            elif action == "drop":
                stack.sim.control(op="drop")
            elif action == "kill_bind":
                victim = rng.choice(["bind:tcell:t1", "bind:tcell:t2", "bind:voda:v1"])
                ray.kill(ray.get_actor(victim, namespace=stack.namespace), no_restart=True)
                pending.remove(action)
            elif action == "kill_throttle":
                # Ray restarts it (max_restarts=-1); its binds wait out the restart, then it counts
                # its last window as full.
                victim = rng.choice(["throttle:tcell", "throttle:voda"])
                ray.kill(ray.get_actor(victim, namespace=stack.namespace), no_restart=False)
                pending.remove(action)
            elif action == "restart_api":
                # The control plane goes and comes back on its port; the job's actor never needed it.
                port = stack.api.port
                stack.api.stop()
                stack.api = ApiProcess(stack.workdir, stack.config_dir, stack.env, port=port)
                pending.remove(action)
            elif action == "restart_redis":
                # A clean restart (SIGTERM, AOF written out) on the same port: every client of it
                # (API, job actor, binds) meets the outage and must carry on by itself.
                stack.redis_server.stop()
                time.sleep(rng.uniform(0.5, 2.0))
                stack.redis_server.start()
                pending.remove(action)
            elif action == "crash_redis":
                # SIGKILL, and the file cut back to a second ago (what a machine crash leaves with
                # appendfsync everysec): the binds' writes of that second are lost, and each bind
                # writes its own again when its fence shows the gap (ulak.dispatch.fence).
                now = time.monotonic()
                sizes = [size for at, size in aof if resumed_at + 3.0 <= at <= now - 1.0]
                if not sizes:
                    faults.pop()  # too soon after a resume: another time
                    continue
                cut = crash_redis(stack.redis_server, keep_bytes=sizes[-1])
                faults.append(f"crash_redis cut {cut} bytes")
                pending.remove(action)
            elif action == "restart_smsc":
                restart_smsc(stack, faults.count("restart_smsc"), kill=seed == 2)
                pending.remove(action)
            elif action == "cancel":
                assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
                pending.remove(action)
        view = wait_state(http, job_id, "done", "cancelled", "failed", timeout=240)
        report = http.get(f"/v1/jobs/{job_id}/report")
    assert not pending, f"the job ended before its faults: {faults}"  # else the test proves nothing
    assert view["state"] == ("cancelled" if cancel and "cancel" in faults else "done"), (view, faults)
    assert_adds_up(view)
    c = view["counts"]
    assert c["in_flight"] == 0, (c, faults)
    if view["state"] == "done":
        assert c["pending"] == 0, (c, faults)
    records = records_of(stack, prefixes)
    no_duplicates(records)
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert len(rows) == c["accepted"]
    statuses = Counter(r["status"] for r in rows)
    assert "in_flight" not in statuses and (view["state"] != "done" or "pending" not in statuses)
    assert_report_agrees(rows, records, faults)


def test_redis_away_is_a_503_that_says_so_and_back_is_200(chaos_stack: Stack) -> None:
    stack = chaos_stack
    with stack.client() as http:
        assert http.get("/v1/jobs").status_code == 200
        stack.redis_server.stop()
        try:
            away = http.get("/v1/jobs")
        finally:
            stack.redis_server.start()
        assert away.status_code == 503, away.text
        assert away.json()["code"] == "redis_unavailable" and away.headers["Retry-After"] == "2"
        # Back: the first request on the pool's stale connections is retried, not failed.
        assert http.get("/v1/jobs").status_code == 200


OUTAGE = 30.0  # seconds with no SMSC on its port: every bind's backoff reaches its 10 s cap


def test_an_smsc_away_for_long_is_waited_on_with_a_reason_and_bounded_attempts(chaos_stack: Stack) -> None:
    """The SMSC gone from its port (connections refused) for OUTAGE seconds mid-job: the binds keep
    their queued parts (no part goes back to be fed again, none is lost), try again no more often
    than their backoff allows, the job and /v1/operators say what they wait on, and once the SMSC is
    back the job finishes by itself, each part once at the SMSC."""
    stack = chaos_stack
    prefixes = ("905329", "905429")
    path = stack.workdir / "outage.csv"
    mixed_campaign(path, prefixes, 1500)
    with stack.client() as http:
        job_id = post_job(http, path, template=TEMPLATE).json()["id"]
        wait_for(lambda: len(records_of(stack, prefixes)) > 100, timeout=60, what="sending to start")
        restart_smsc(stack, 10, kill=False, start=False)
        gone = time.monotonic()

        def waiting() -> str:
            return str(http.get(f"/v1/jobs/{job_id}").json().get("waiting") or "")

        why = wait_for(lambda: "attempt" in waiting() and waiting(), timeout=OUTAGE, what="the job to wait")
        assert "tcell down" in why and "voda down" in why and "reconnecting for" in why, why
        queued_then = None
        while time.monotonic() - gone < OUTAGE:
            operators = http.get("/v1/operators").json()
            assert {o["name"]: o["state"] for o in operators} == {"tcell": "down", "voda": "down"}
            binds = [b for o in operators for b in o["binds"]]
            bound = Backoff().attempts_bound(time.monotonic() - gone + 1)
            assert all(b["attempts"] <= bound for b in binds), (bound, binds)
            queued = sum(b["queued"] for b in binds)
            queued_then = queued if queued_then is None else queued_then
            assert queued == queued_then, "parts left the binds' queues while the SMSC was away"
            assert http.get(f"/v1/jobs/{job_id}").json()["state"] == "sending"
            time.sleep(1.0)
        assert max(b["attempts"] for b in binds) >= 5, binds  # they did keep trying
        stack.sim = restart_smsc(stack, 10, kill=False, start=True)
        view = wait_state(http, job_id, "done", "failed", timeout=180)
        assert not view.get("waiting"), view
    assert_adds_up(view)
    assert view["counts"]["pending"] == 0 and view["counts"]["in_flight"] == 0, view
    no_duplicates(records_of(stack, prefixes))
