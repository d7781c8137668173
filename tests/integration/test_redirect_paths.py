"""The redirect's one-call path (``links.follow_script``, a single Redis) against its three-call path
(the code, the part's times, ``links.CLICK_SCRIPT``: what a Redis Cluster needs), over any sequence
of fetches on a real redis-server: the same answers, and the same clicks recorded, field for field.

The apps are called in process as ASGI apps (no HTTP: the service over HTTP is test_links'), each on
a database of its own, with one fake clock."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.redirect import RedirectApp
from tests.helpers import FakeClock
from ulak import keys
from ulak.records import Ack, LinkOwner, Receipt
from ulak.redis_server import RedisServer

JOB, GONE = "j1", "j-gone"
TARGET = "https://shop.example/a?x=1"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
AGENTS = (PHONE, "facebookexternalhit/1.1", "", "WhatsApp/2.23")
START = 1_800_000_000.0
SCANNER = 2.0  # seconds; part times on whole seconds and the clock on eighths: no rounding apart


def _setup(client: redis.Redis, rows: list[tuple[str, int, str, str]]) -> None:
    """The job (with its link), and per code its owner and its first part's times."""
    client.flushdb()
    client.set(keys.LINK_SALT, b"salt" * 8)  # one salt for both databases: the same address hashes
    client.hset(keys.job(JOB), mapping={"state": "running", "options": json.dumps({"link_url": TARGET})})
    for code, row, ledger, times in rows:
        job = GONE if code.startswith("G") else JOB
        client.set(keys.link(code), LinkOwner(job, row, ledger).write())
        at_ms = int(START * 1000) + 1000 * (row % 5)
        if "m" in times:
            client.hset(
                keys.job_bucket(job, ledger or "x", keys.row_bucket(row)),
                f"{keys.row_field(row)}:1:m",
                Ack(f"id|{row}", at_ms).write(),
            )
        if "r" in times:
            client.hset(
                keys.job_bucket(job, ledger or "x", keys.row_bucket(row)),
                f"{keys.row_field(row)}:1:r",
                Receipt("DELIVRD", "000", at_ms + 500).write(),
            )


def _recorded(client: redis.Redis) -> dict[str, Any]:
    """Everything a click writes, stream entries without their ids."""
    return {
        "clicks": client.hgetall(keys.job_clicks(JOB)),
        "rows": client.hgetall(keys.job_clicked_rows(JOB)),
        "minutes": client.hgetall(keys.job_click_minutes(JOB)),
        "events": [fields for _, fields in client.xrange(keys.job_click_events(JOB))],
        "gone": client.keys(f"*{GONE}*clicks*"),
    }


async def _fetch(app: RedirectApp, method: str, path: str, agent: str, address: str) -> tuple[int, str]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"user-agent", agent.encode())] if agent else [],
        "client": (address, 40000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    headers = dict(sent[0]["headers"])
    return sent[0]["status"], headers.get(b"location", b"").decode()


async def _run(
    url: str, one_call: bool, fetches: list[tuple[int, str, int, str, int]], codes: list[str]
) -> list[tuple[int, str]]:
    clock = FakeClock(START)
    app = RedirectApp(url, scanner_seconds=SCANNER, one_call=one_call, clock=clock)
    await app.start()
    try:
        answers = []
        for index, method, agent, address, eighths in fetches:
            clock.advance(eighths / 8)
            answers.append(await _fetch(app, method, f"/{codes[index]}", AGENTS[agent], address))
        return answers
    finally:
        await app.stop()


codes_st = st.lists(
    st.tuples(
        st.integers(0, 30), st.sampled_from(["tcell", "voda", ""]), st.sampled_from(["", "m", "r", "mr"])
    ),
    min_size=1,
    max_size=8,
)
fetches_st = st.lists(
    st.tuples(
        st.integers(0, 9),  # a code (beyond the reserved: unknown)
        st.sampled_from(["GET", "GET", "GET", "HEAD"]),
        st.integers(0, len(AGENTS) - 1),
        st.sampled_from(["10.0.0.1", "10.0.0.2"]),
        st.integers(0, 40),  # eighths of a second since the last fetch
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(owners=codes_st, fetches=fetches_st, gone=st.booleans())
def test_one_call_and_three_calls_record_the_same_clicks(
    redis_server: RedisServer, owners: list[tuple[int, str, str]], fetches: list[Any], gone: bool
) -> None:
    codes = [f"{'G' if gone and i == 0 else 'C'}ode{i:05d}" for i in range(10)]
    rows = [(codes[i], row, ledger, times) for i, (row, ledger, times) in enumerate(owners)]
    base = redis_server.url.rsplit("/", 1)[0]
    one, three = f"{base}/1", f"{base}/2"
    recorded = []
    answers = []
    for url, one_call in ((one, True), (three, False)):
        client = redis.Redis.from_url(url)
        try:
            _setup(client, rows)
            answers.append(asyncio.run(_run(url, one_call, fetches, codes)))
            recorded.append(_recorded(client))
        finally:
            client.close()
    assert answers[0] == answers[1]
    assert recorded[0] == recorded[1]
    # And what they say is right: the job's codes lead to its target, the rest nowhere.
    known = {code for code, *_ in rows if code.startswith("C")}
    for (index, *_), (status, location) in zip(fetches, answers[0], strict=True):
        assert (status, location) == ((302, TARGET) if codes[index] in known else (404, ""))
    assert len(recorded[0]["events"]) == sum(codes[f[0]] in known for f in fetches)
    assert recorded[0]["gone"] == []


def test_the_scanner_rule_on_the_one_call_path(redis_client: redis.Redis, redis_server: RedisServer) -> None:
    """A person's fetch within the scanner's seconds of the receipt is a bot's, even when its ack is
    older than that; after, a click; a part with only its ack counts from the ack; a row with no
    times is a click at once."""
    rows = [("Code00000", 5, "tcell", "mr"), ("Code00001", 6, "tcell", "m"), ("Code00002", 7, "tcell", "")]
    _setup(redis_client, rows)
    codes = [code for code, *_ in rows]
    # Row 5's ack is at START, its receipt at START + 0.5; row 6's ack at START + 1 (row % 5 seconds).
    fetches = [
        (0, "GET", 0, "a", 18),
        (0, "GET", 0, "a", 2),
        (1, "GET", 0, "a", 0),
        (1, "GET", 0, "a", 8),
        (2, "GET", 0, "a", 0),
    ]
    answers = asyncio.run(_run(redis_server.url, True, fetches, codes))
    assert [status for status, _ in answers] == [302] * 5
    # At START+2.25: row 5 a bot (1.75 s after its receipt, though 2.25 after its ack). At +2.5: a
    # click (2.0 s after: not < 2).
    # Row 6 at +2.5: bot (1.5 s after its ack); at +3.5 a click. Row 7 a click.
    assert redis_client.hgetall(keys.job_clicks(JOB)) == {b"bots": b"2", b"total": b"3", b"unique": b"3"}
    events = [fields[b"bot"] for _, fields in redis_client.xrange(keys.job_click_events(JOB))]
    assert events == [b"1", b"0", b"1", b"0", b"0"]


def test_a_redis_that_forgot_the_script_is_given_it_again(
    redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    """A restarted Redis (or ``SCRIPT FLUSH``) has lost the script: the next fetch loads it again."""
    _setup(redis_client, [("Code00000", 3, "tcell", "")])

    async def run() -> list[tuple[int, str]]:
        app = RedirectApp(redis_server.url, scanner_seconds=SCANNER, one_call=True, clock=FakeClock(START))
        await app.start()
        try:
            first = await _fetch(app, "GET", "/Code00000", PHONE, "a")
            redis_client.script_flush()
            return [first, await _fetch(app, "GET", "/Code00000", PHONE, "a")]
        finally:
            await app.stop()

    assert asyncio.run(run()) == [(302, TARGET)] * 2
    assert redis_client.hgetall(keys.job_clicks(JOB)) == {b"total": b"2", b"unique": b"1"}
