"""Every part a bind is given ends in exactly one place: a stateful property test.

``BindClient`` runs for real (its send loop, flusher, reconnects, leases) against an in-memory SMSC:
a ``Session(Role.SMSC)`` behind a fake transport, whose answers the test chooses. Hypothesis
interleaves sends, answers (accepted, throttled, failed), dropped connections, withdraws (a pause or
a runner taking the job back) and resumes, then lets everything settle and checks, against what the
SMSC itself accepted:

* nothing reached the SMSC twice (at-most-once, the default);
* every part is in exactly one final place: acked in the ledger (and the SMSC has it), failed,
  unknown (lost in flight: the SMSC may have it), or back with the test (withdrawn: the SMSC does
  not have it and the ledger does not call it sent);
* the ledger's counters add up.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pydantic import SecretStr

from ulak.dispatch.bind import Backoff, BindClient, OutboundPart
from ulak.dispatch.ledger import Event, MemoryLedger
from ulak.dispatch.throttle import LocalTokenSource, SlidingWindowLimiter
from ulak.settings import BindConfig, OperatorConfig
from ulak.smpp.constants import CommandStatus
from ulak.smpp.pdu import (
    BindTransceiver,
    BindTransceiverResp,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from ulak.smpp.session import RequestReceived, Role, Session

BIND = BindConfig(
    name="b1",
    host="smsc.invalid",
    port=2775,
    system_id="test",
    password_env="UNUSED",
    password=SecretStr("secret"),
    window=4,
)
OPERATOR = OperatorConfig(name="op", prefixes=("90",), tps=1_000_000, binds=(BIND,))
JOBS = ("a", "b")


class FakeTransport:
    """The bind's end of an in-memory connection to :class:`InMemorySmsc`."""

    def __init__(
        self, smsc: InMemorySmsc, protocol: asyncio.Protocol, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.smsc = smsc
        self.protocol = protocol
        self.loop = loop
        self.closed = False

    def write(self, data: bytes) -> None:
        if data and not self.closed:  # b"" would read as end of stream to a sans-IO session
            self.smsc.receive(self, data)

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def deliver(self, data: bytes) -> None:
        if not self.closed:
            self.protocol.data_received(data)


class InMemorySmsc:
    """Binds whoever asks; keeps the submit_sm it has not answered, for the test to answer."""

    def __init__(self) -> None:
        self.transport: FakeTransport | None = None
        self.session: Session | None = None
        self.waiting: list[tuple[int, str]] = []  # (sequence, destination) not answered yet
        self.accepted: Counter[str] = Counter()  # destination → times accepted
        self.next_id = 1

    async def connect(self, factory: Any) -> tuple[FakeTransport, asyncio.Protocol]:
        protocol = factory()
        transport = FakeTransport(self, protocol, asyncio.get_running_loop())
        self.transport, self.session, self.waiting = transport, Session(Role.SMSC, window=100), []
        protocol.connection_made(transport)  # type: ignore[arg-type]
        return transport, protocol

    def receive(self, transport: FakeTransport, data: bytes) -> None:
        if transport is not self.transport or self.session is None:
            return
        session = self.session
        session.receive_data(data)
        out = []
        for event in session.events():
            if not isinstance(event, RequestReceived):
                continue
            pdu = event.pdu
            if isinstance(pdu, BindTransceiver):
                out.append(session.send(BindTransceiverResp(sequence=pdu.sequence, system_id="SMSC")))
            elif isinstance(pdu, SubmitSm):
                self.waiting.append((pdu.sequence, pdu.destination_addr))
            elif isinstance(pdu, EnquireLink):
                out.append(session.send(EnquireLinkResp(sequence=pdu.sequence)))
            elif isinstance(pdu, Unbind):
                out.append(session.send(UnbindResp(sequence=pdu.sequence)))
        if out:
            reply = b"".join(out)
            transport.loop.call_soon(transport.deliver, reply)

    def answer(self, count: int, status: CommandStatus) -> int:
        """Answer the *count* oldest submits with *status*; returns how many were answered."""
        if self.session is None or self.transport is None or self.transport.closed:
            return 0
        take, self.waiting = self.waiting[:count], self.waiting[count:]
        out = []
        for sequence, destination in take:
            if status == CommandStatus.ESME_ROK:
                self.accepted[destination] += 1
                out.append(self.session.send(SubmitSmResp(sequence=sequence, message_id=f"{self.next_id:x}")))
                self.next_id += 1
            else:
                out.append(self.session.send(SubmitSmResp(sequence=sequence, status=status)))
        if out:
            self.transport.deliver(b"".join(out))
        return len(take)

    def drop(self) -> list[str]:
        """Close the connection; the submits not answered may or may not have been taken: returned."""
        lost = [d for _, d in self.waiting]
        self.waiting = []
        if self.transport is not None:
            self.transport.abort()
        return lost


def part(job: str, row: int) -> OutboundPart:
    return OutboundPart(job, row, 1, 1, SubmitSm(destination_addr=f"{JOBS.index(job) + 1}{row:07d}"))


def destination(p: OutboundPart) -> str:
    return f"{JOBS.index(p.job) + 1}{p.row:07d}"


class BindPartStates(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.smsc = InMemorySmsc()
        self.ledger = MemoryLedger()
        self.made: list[OutboundPart] = []
        self.held: dict[str, list[OutboundPart]] = {job: [] for job in JOBS}  # withdrawn, with us
        self.maybe: set[str] = set()  # destinations lost in flight: the SMSC may or may not have them
        self.rows = dict.fromkeys(JOBS, 0)

        async def sink(events: list[Event]) -> None:
            self.ledger.apply(events)

        self.bind = BindClient(
            BIND,
            OPERATOR,
            tokens=LocalTokenSource(SlidingWindowLimiter(OPERATOR.tps)),
            sink=sink,
            flush_interval=0.001,
            rng=random.Random(0),
            backoff=Backoff(base=0.001, cap=0.005, rng=random.Random(0)),
            # long next to a step (4 ms): parts answered "slow down" wait, and withdraws meet them
            throttle_pause=0.03,
            connect=self.smsc.connect,
        )
        self.run(self.bind.start())
        self.settle()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def settle(self, seconds: float = 0.004) -> None:
        self.run(asyncio.sleep(seconds))

    @rule(job=st.sampled_from(JOBS), n=st.integers(1, 6))
    def enqueue(self, job: str, n: int) -> None:
        parts = [part(job, self.rows[job] + i) for i in range(n)]
        self.rows[job] += n
        self.made += parts
        self.bind.enqueue(parts)
        self.settle()

    @rule(
        n=st.integers(1, 4),
        status=st.sampled_from(
            [CommandStatus.ESME_ROK] * 3 + [CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RINVDSTADR]
        ),
    )
    def answer(self, n: int, status: CommandStatus) -> None:
        self.smsc.answer(n, status)
        self.settle()

    @rule()
    def drop(self) -> None:
        self.maybe.update(self.smsc.drop())
        self.settle(0.01)

    @rule(job=st.sampled_from(JOBS))
    def withdraw(self, job: str) -> None:
        self.held[job] += self.bind.withdraw(job)
        self.run(self.bind.flush())

    @precondition(lambda self: any(self.held.values()))
    @rule(job=st.sampled_from(JOBS))
    def resume(self, job: str) -> None:
        parts, self.held[job] = self.held[job], []
        self.bind.enqueue(parts)
        self.settle()

    @invariant()
    def nothing_twice_at_the_smsc(self) -> None:
        assert max(self.smsc.accepted.values(), default=0) <= 1

    @invariant()
    def the_loop_never_fails(self) -> None:
        """Drops at any moment (even as a connection opens) are connection errors, not bugs."""
        assert not self.bind.stats.failures, self.bind.stats.last_error

    def teardown(self) -> None:
        try:
            self._finish()
        finally:
            self.run(_cancel_all())
            self.loop.close()

    def _finish(self) -> None:
        # Everything still with the bind is sent and accepted; then the bind is stopped.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not self.bind.queued and not self.bind.in_flight and not self.smsc.waiting:
                break
            self.smsc.answer(100, CommandStatus.ESME_ROK)
            self.settle(0.005)
        assert not self.bind.queued and not self.bind.in_flight, self.bind.describe()
        for job in JOBS:
            self.held[job] += self.bind.withdraw(job)
        self.run(self.bind.stop())
        held = {destination(p) for parts in self.held.values() for p in parts}
        assert len(held) == sum(len(v) for v in self.held.values())  # none withdrawn twice
        for p in self.made:
            key, dst = (p.job, p.row, p.part), destination(p)
            state = self.ledger.parts.get(key, {}).get("state")
            at_smsc = self.smsc.accepted[dst]
            if dst in held:  # with the runner: never at the SMSC, not sent for the ledger
                assert state is None and at_smsc == 0, (p, state, at_smsc)
            elif state == "a":
                assert at_smsc == 1, (p, at_smsc)
            elif state == "f":
                assert at_smsc == 0, p
            elif state == "u":  # lost in flight: the SMSC may have it
                assert dst in self.maybe, p
            else:
                raise AssertionError(f"{p} ended nowhere: ledger {state!r}, SMSC {at_smsc}")
        for job in JOBS:
            c = self.ledger.counters[job]
            in_flight = sum(1 for (j, _), r in self.ledger.rows.items() if j == job and r["state"] == "s")
            assert in_flight == 0
            assert c["submitted"] == c["acked"] + c["failed"] + c["unknown"]
            assert c["parts_sent"] == c["parts_acked"] + c["parts_failed"] + c["parts_unknown"]


async def _cancel_all() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


BindPartStates.TestCase.settings = settings(max_examples=100, stateful_step_count=25, deadline=None)
test_bind_part_states = BindPartStates.TestCase


def _stopped_with_a_full_window(answer_during_stop: bool) -> tuple[BindClient, MemoryLedger, InMemorySmsc]:
    """A bind whose window is full (the SMSC answers nothing) is stopped; the SMSC answers all it
    holds while the stop waits, or never."""
    smsc, ledger = InMemorySmsc(), MemoryLedger()

    async def sink(events: list[Event]) -> None:
        ledger.apply(events)

    async def scenario() -> BindClient:
        bind = BindClient(
            BIND,
            OPERATOR,
            tokens=LocalTokenSource(SlidingWindowLimiter(OPERATOR.tps)),
            sink=sink,
            flush_interval=0.001,
            connect=smsc.connect,
        )
        await bind.start()
        bind.enqueue([part("a", row) for row in range(10)])
        deadline = time.monotonic() + 5
        while len(smsc.waiting) < BIND.window and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        assert len(smsc.waiting) == BIND.window  # the window is full
        stopping = asyncio.ensure_future(bind.stop())
        await asyncio.sleep(0.05)
        if answer_during_stop:
            smsc.answer(100, CommandStatus.ESME_ROK)
        await asyncio.wait_for(stopping, 10)
        return bind

    loop = asyncio.new_event_loop()
    try:
        bind = loop.run_until_complete(scenario())
        loop.run_until_complete(_cancel_all())
    finally:
        loop.close()
    return bind, ledger, smsc


def test_a_bind_stops_when_its_window_is_full_and_nothing_is_answered() -> None:
    """The unbind is a request too: sent into a full window it raised, and stop() never finished."""
    bind, ledger, smsc = _stopped_with_a_full_window(answer_during_stop=False)
    assert bind.state.value == "closed"
    c = ledger.counters["a"]
    assert (c["parts_sent"], c["parts_unknown"], c["parts_acked"]) == (BIND.window, BIND.window, 0)
    assert not smsc.accepted


def test_a_bind_stopping_with_a_full_window_unbinds_once_it_is_answered() -> None:
    """Answers that come while it stops settle the parts, and nothing more is sent meanwhile."""
    bind, ledger, smsc = _stopped_with_a_full_window(answer_during_stop=True)
    assert bind.state.value == "closed"
    c = ledger.counters["a"]
    assert (c["parts_sent"], c["parts_acked"], c["parts_unknown"]) == (BIND.window, BIND.window, 0)
    assert sum(smsc.accepted.values()) == BIND.window and bind.queued == 10 - BIND.window
