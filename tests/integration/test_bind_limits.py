"""Binds under the limits operators state (per bind and per account), across withdraws, with a wrong
password and with a bug in the send loop: BindClient against the simulator over TCP, ledger in Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import redis
import redis.asyncio

from tests.helpers import SimProcess, ledger_hash, sim_bind
from tests.integration.binds import campaign, record_keys
from ulak import keys
from ulak.dispatch.bind import BindClient, OutboundPart
from ulak.dispatch.bindstate import BindState
from ulak.dispatch.ledger import RedisLedger
from ulak.dispatch.throttle import LocalTokenSource, SlidingWindowLimiter
from ulak.settings import OperatorConfig


def four_binds(sim: SimProcess, *, bind_tps: float | None, account_tps: float) -> OperatorConfig:
    binds = tuple(sim_bind(sim, f"b{i}", window=10, tps=bind_tps) for i in range(1, 5))
    return OperatorConfig(name="op", prefixes=("90",), tps=account_tps, binds=binds)


def by_message(parts: list[OutboundPart], n: int) -> list[list[OutboundPart]]:
    """*parts* dealt to *n* binds a whole message at a time, as the runner deals them."""
    out: list[list[OutboundPart]] = [[] for _ in range(n)]
    for p in parts:
        out[p.row % n].append(p)
    return out


async def run_binds(op: OperatorConfig, url: str, parts: list[OutboundPart]) -> list[BindClient]:
    client = redis.asyncio.Redis.from_url(url)
    account = LocalTokenSource(SlidingWindowLimiter(op.tps))  # the ThrottleActor's part
    sink = RedisLedger(client, ledger=op.name).apply_async
    binds = [BindClient(b, op, tokens=account, sink=sink) for b in op.binds]
    for bind in binds:
        await bind.start()
    for bind, share in zip(binds, by_message(parts, len(binds)), strict=True):
        bind.enqueue(share)
    await asyncio.gather(*(bind.drain(timeout=60) for bind in binds))
    for bind in binds:
        await bind.stop()
    await client.aclose()
    return binds


@pytest.mark.sim_args("--tps", "100")
def test_four_binds_at_their_own_cap_are_never_throttled(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    """4 binds × 100 TPS, the SMSC counting each bind's sliding second: a mixed campaign is sent
    with no ESME_RTHROTTLED at all (the operator's 400 alone let one bind take more than its 100)."""
    op = four_binds(sim, bind_tps=100, account_tps=400)
    parts, n_parts = campaign(op, 700)
    binds = asyncio.run(run_binds(op, redis_server_url, parts))
    stats = sim.stats()
    assert stats["rejected"].get("ESME_RTHROTTLED", 0) == 0
    assert sum(b.stats.throttled for b in binds) == 0
    assert stats["submit_sm_accepted"] == n_parts == len(sim.records())
    assert max(record_keys(sim).values()) == 1
    per_conn = Counter(r["conn"] for r in sim.records())
    assert len(per_conn) == 4  # every bind sent its share


@pytest.mark.sim_args("--tps", "50")
def test_binds_told_only_the_account_cap_learn_the_limit_the_smsc_enforces_per_bind(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    """The SMSC allows each bind 50/s; Ulak is told only the account's 200/s for its 4 binds (how
    most users first configure an operator). Each bind learns its limit from the 0x58s: few of them
    (before learning, 11-27 % of submits were answered 0x58 and each bind ran at half its limit),
    a learned rate near 50, and every part at the SMSC exactly once."""
    op = four_binds(sim, bind_tps=None, account_tps=200)
    parts, n_parts = campaign(op, 2400)
    binds = asyncio.run(run_binds(op, redis_server_url, parts))
    stats = sim.stats()
    throttled = stats["rejected"].get("ESME_RTHROTTLED", 0)
    assert throttled <= 0.03 * stats["submit_sm"]
    assert all(b.sender.learner.learned for b in binds)
    assert all(35 <= b.sender.learner.rate <= 60 for b in binds), [b.sender.learner.rate for b in binds]
    assert stats["submit_sm_accepted"] == n_parts == len(sim.records())
    assert max(record_keys(sim).values()) == 1


@pytest.mark.sim_args("--tps", "100", "--account-tps", "250")
def test_bind_caps_and_the_account_cap_hold_together(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    """4 binds × 100 TPS under an account of 250: neither cap is ever exceeded."""
    op = four_binds(sim, bind_tps=100, account_tps=250)
    parts, n_parts = campaign(op, 500)
    asyncio.run(run_binds(op, redis_server_url, parts))
    stats = sim.stats()
    assert stats["rejected"].get("ESME_RTHROTTLED", 0) == 0
    assert stats["submit_sm_accepted"] == n_parts


@pytest.mark.sim_args("--tps", "40")
def test_parts_throttled_then_withdrawn_go_back_unsent(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    """Parts sent, answered ESME_RTHROTTLED and then taken back by a pause are *unsent* in the ledger,
    so a runner that resumes sends them again (issue 14: it skipped them as sent, and they were lost).
    Every part ends exactly one of: at the SMSC and in the ledger, or withdrawn and unknown to both."""
    op = OperatorConfig(name="op", prefixes=("90",), tps=5000, binds=(sim_bind(sim, "b1", window=20),))
    parts = [p for p in campaign(op, 400)[0] if p.parts == 1][:250]
    withdrawn: list[OutboundPart] = []

    async def run() -> BindClient:
        client = redis.asyncio.Redis.from_url(redis_server_url)
        bind = BindClient(
            op.binds[0],
            op,
            tokens=LocalTokenSource(SlidingWindowLimiter(op.tps)),
            sink=RedisLedger(client, ledger=op.name).apply_async,
        )
        await bind.start()
        bind.enqueue(parts)
        while bind.stats.throttled < 10:  # our limiter is generous; the SMSC is not
            await asyncio.sleep(0.005)
        # The pause: take the job back until the bind holds none of it (answers still on the wire
        # may put throttled parts back in its queue after a withdraw).
        while True:
            withdrawn.extend(bind.withdraw("job1"))
            await bind.flush()
            if not bind.pending_of("job1"):
                withdrawn.extend(bind.withdraw("job1"))
                await bind.flush()
                break
            await asyncio.sleep(0.01)
        await bind.stop()
        await client.aclose()
        return bind

    bind = asyncio.run(run())
    assert bind.stats.throttled >= 10
    fields = ledger_hash(redis_client, "parts", "job1", "op")
    ledger = {k.decode() for k in fields if k.count(b":") == 1}
    states = {v for k, v in fields.items() if k.count(b":") == 1}
    at_smsc = {r["dst"] for r in sim.records()}
    back = {f"90532{p.row:07d}" for p in withdrawn}
    assert withdrawn and len(back) == len(withdrawn)  # nothing taken back twice
    assert not back & at_smsc  # what came back never reached the SMSC…
    assert not {f"{p.row}:{p.part}" for p in withdrawn} & ledger  # …and the ledger does not call it sent
    assert states <= {b"a"}  # nothing left in flight
    assert len(ledger) + len(withdrawn) == len(parts) == len(at_smsc) + len(back)
    c = {k.decode(): int(v) for k, v in redis_client.hgetall(keys.job_op_counters("job1", "op")).items()}
    assert c["parts_sent"] == c["parts_acked"] == len(at_smsc) == c["submitted"]


def test_a_wrong_password_is_a_named_state_not_a_retry_loop(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str
) -> None:
    bind_config = sim_bind(sim, "b1").model_copy(update={"password_env": "OP_B1_PASSWORD"})
    bind_config = bind_config.model_copy(update={"password": bind_config.password.__class__("wrong")})
    op = OperatorConfig(name="op", prefixes=("90",), tps=100, binds=(bind_config,))

    async def run() -> dict[str, Any]:
        bind = BindClient(bind_config, op, tokens=LocalTokenSource(SlidingWindowLimiter(100)), sink=_discard)
        await bind.start()
        for _ in range(500):
            if bind.state is BindState.REFUSED:
                break
            await asyncio.sleep(0.01)
        described = bind.describe()
        await bind.stop()
        return described

    described = asyncio.run(run())
    assert described["state"] == "refused"
    assert "ESME_RINVPASWD" in str(described["last_error"])
    assert "$OP_B1_PASSWORD" in str(described["last_error"])  # says what to fix
    assert described["binds_refused"] == 1  # not retried at once


async def _discard(events: list[Any]) -> None:
    return None


def buggy_twice(real: Any) -> Any:
    """*real*, raising a TypeError on its first two calls (a bug anywhere in the loop stands for any)."""
    bugs = [2]

    def call(*args: Any) -> Any:
        if bugs[0]:
            bugs[0] -= 1
            raise TypeError("'<' not supported between instances of 'str' and 'int'")
        return real(*args)

    return call


def test_a_bug_in_the_send_loop_is_logged_shown_and_survived(
    sim: SimProcess, redis_client: redis.Redis, redis_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error nobody expected ends the connection, not the bind: it is logged with its traceback,
    counted and shown, and the bind binds again and sends everything (issue 14: the loop ended
    silently and the bind said "bound" for good)."""
    op = OperatorConfig(name="op", prefixes=("90",), tps=5000, binds=(sim_bind(sim, "b1"),))
    parts, n_parts = campaign(op, 50)
    seen: list[str] = []

    async def run() -> BindClient:
        client = redis.asyncio.Redis.from_url(redis_server_url)
        bind = BindClient(
            op.binds[0],
            op,
            tokens=LocalTokenSource(SlidingWindowLimiter(5000)),
            sink=RedisLedger(client, ledger=op.name).apply_async,
        )
        bind.sender._lease_size = buggy_twice(bind.sender._lease_size)  # type: ignore[method-assign]
        await bind.start()
        bind.enqueue(parts)
        for _ in range(3000):
            seen.append(bind.state.value)
            if not bind.queued and not bind.in_flight and bind.stats.failures == 2:
                break
            await asyncio.sleep(0.005)
        await bind.drain(timeout=30)
        await bind.stop()
        await client.aclose()
        return bind

    bind = asyncio.run(run())
    assert bind.stats.failures == 2
    assert "TypeError" in bind.stats.last_error
    assert "failed" in seen
    assert len(sim.records()) == n_parts
    out = capsys.readouterr()
    assert "bind.failed" in out.out + out.err and "Traceback" in out.out + out.err
