"""The send path of one bind: its queue, the parts staged to go next (``ulak.dispatch.stager``), the
tokens leased from the operator's limiter (``ulak.dispatch.leases``), and the loop that spends them
on the window; the SMSC's answers to what it sent (acked, failed, "slow down") and what a lost
connection leaves. :class:`SendPath` owns all of it; the connection (``BindClient``) is its link.

ESME_RTHROTTLED / ESME_RMSGQFUL are not the message's fault: the part goes back to the front of the
staged parts in its order, the lease in hand is given up, the bind pauses briefly, and the rate it
leases at is lowered to what it learns the SMSC really allows (``ulak.dispatch.learning``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

from ulak.dispatch.bindstate import BindEvent, BindState
from ulak.dispatch.durable import SinkRevoked
from ulak.dispatch.fairqueue import FairQueue
from ulak.dispatch.learning import AcceptCounter, RateLearner
from ulak.dispatch.leases import LeaseMeter
from ulak.dispatch.ledger import PartAcked, PartFailed, PartReturned, PartSent, PartUnknown
from ulak.dispatch.part import OutboundPart
from ulak.dispatch.refusing import RefusalGuard
from ulak.dispatch.sendrecord import RecordFenced
from ulak.dispatch.stager import Stager
from ulak.dispatch.throttle import TokenSource
from ulak.dispatch.writer import LedgerWriter
from ulak.refusals import Refusal, Scope
from ulak.settings import BindConfig, OperatorConfig
from ulak.smpp.constants import CommandStatus
from ulak.smpp.pdu import SubmitSmResp
from ulak.smpp.receipt import normalize_message_id
from ulak.smpp.session import Outstanding, Session

_TRANSIENT = (CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL)


class Link(Protocol):
    """What the send path needs of its connection (``BindClient``)."""

    smsc: str
    lost: asyncio.Event  # set once the connection is lost
    wakeup: asyncio.Event  # set when the send loop should look again (an answer freed the window)
    stopping: bool  # stopping, or revoked: not one more part

    def write(self, data: bytes) -> None: ...

    def move(self, event: BindEvent, *, to: BindState | None = None) -> None: ...

    def check_liveness(self, session: Session, now: float, interval: float) -> None: ...

    async def sleep_or_lost(self, seconds: float, *, wake: bool = False) -> None: ...


class SendPath:
    """One bind's sending (see the module docstring)."""

    def __init__(
        self,
        bind: BindConfig,
        operator: OperatorConfig,
        tokens: TokenSource,
        link: Link,
        writer: LedgerWriter,
        *,
        learner: RateLearner,
        revoked: Callable[[SinkRevoked], None],
        stats: Any,
        log: Any,
        lease_seconds: float,
        throttle_pause: float,
        rng: random.Random,
    ) -> None:
        self.bind = bind
        self.operator = operator
        self.tokens = tokens
        self.lease_seconds = lease_seconds
        self.at_least_once = operator.delivery_semantics == "at-least-once"
        self.stats = stats
        self.queue: FairQueue[OutboundPart] = FairQueue()
        # Parts taken from the queue to be sent next, in order: written to the send record first (see
        # ulak.dispatch.sendrecord), up to two windows at a time, and only then sent; and parts the
        # SMSC answered "slow down", to go again first (ulak.dispatch.stager).
        self._stager: Stager[OutboundPart] = Stager()
        self._staged = self._stager.staged  # the send path's view: the stager never replaces it
        # The lease being spent as the window frees up, and spent ones to settle (ulak.dispatch.leases).
        self._leases = LeaseMeter(time.monotonic)
        self._last_answer = 0.0  # when a submit_sm was last answered, or the connection lost
        self._pause_until = 0.0
        self._throttle_level = 0  # pauses in a row ended by "slow down": how long the next one is
        self.learner = learner  # the rate the SMSC really allows, learned from its "slow down"
        self._accepts = AcceptCounter()  # what it accepted over the last second (for the learner)
        self._throttle_pause = throttle_pause
        self._rng = rng
        self._link, self._writer, self._revoked, self._log = link, writer, revoked, log
        self.refusals = RefusalGuard()  # rows of numbers that refused since: never sent

    @property
    def staged(self) -> int:
        return len(self._stager)

    @property
    def paused_for(self) -> float:
        return max(0.0, round(self._pause_until - time.monotonic(), 3))

    @property
    def unconfirmed(self) -> bool:
        """Spent leases wait for their PDUs' answers (``confirm``)."""
        return bool(self._leases.unconfirmed)

    def unsettled(self) -> list[Any]:
        """The parts staged or being staged (the send record keeps them)."""
        return self._stager.unsettled()

    def crashed(self) -> None:
        """The send loop failed: its lease is not spent again (it expires at the limiter)."""
        self._leases.drop()

    def enqueue(self, parts: list[OutboundPart], *, weight: float = 1.0, scope: Scope | None = None) -> None:
        """Queue parts to send (the caller bounds how much it queues: ``queued`` says how much waits).
        Jobs share the bind by *weight* (see ``ulak.dispatch.fairqueue``); *scope*: whose refusals
        stop their rows (``ulak.refusals``), the rows of numbers refused lately left out at once."""
        for job in {p.job for p in parts}:
            self.queue.set_weight(job, weight)
            self.refusals.set_scope(job, scope)
        parts, stopped = self.refusals.admit(parts)
        if stopped:
            self._writer.outbox.extend(stopped)
            self._log.info("rows.stopped", rows=len(stopped), when="enqueued")
        self.queue.extend(parts)
        self._link.wakeup.set()

    def refused(self, refusals: list[Refusal]) -> None:
        """Numbers refused (``ulak.refusals``): their messages queued here and not started are
        dropped, each row written as stopped."""
        stopped = self.refusals.purge(self.queue, refusals)
        if stopped:
            self._writer.outbox.extend(stopped)
            self._log.info("rows.stopped", rows=len(stopped), when="queued")

    def withdraw(self, job: str) -> list[OutboundPart]:
        """Take *job*'s queued parts back, in order (pause and cancel: nothing more of it is sent).
        Staged ones leave the send record at the next flush (the actor flushes right after)."""
        self._writer.withdrawn()
        self.refusals.forget(job)
        return self._stager.withdraw(job) + self.queue.withdraw(job)

    def queued_of(self, job: str) -> int:
        """*job*'s parts here not sent yet."""
        return self.queue.count(job) + self._stager.count(job)

    @property
    def queued(self) -> int:
        return len(self.queue) + len(self._stager)

    def should_stage(self) -> bool:
        """Less than a window staged, more queued, and tokens in hand for more than is staged."""
        staged = self._stager.ready
        return staged < self.bind.window and bool(self.queue) and self._leases.left > staged

    async def _stage(self, tokens: int) -> None:
        """Take up to two windows of parts from the queue (no more than the lease's *tokens* left
        will send), write them to the send record, and only then let them be sent (a failed write
        puts them back and waits: nothing is sent unrecorded). Staging no further ahead keeps what
        a dying bind leaves ``unknown`` without having sent it small."""
        n = min(len(self.queue), 2 * self.bind.window, tokens)
        items = [self.queue.popleft() for _ in range(n)]
        self._stager.begin(items)
        try:
            await self._writer.record_staged(items)
        except RecordFenced as exc:  # a later process holds the name: send nothing more
            self.queue.extendleft(reversed(self._stager.abort()))
            self._revoked(SinkRevoked(str(exc)))
            return
        except Exception as exc:
            self._log.error("record.write_failed", error=f"{type(exc).__name__}: {exc}")
            self.queue.extendleft(reversed(self._stager.abort()))  # back in front, in order
            await self._link.sleep_or_lost(0.5)
            return
        # A withdraw during the write took its job's parts out of the batch: the rest go.
        self._stager.commit()

    async def run(self, session: Session) -> None:
        """Send on *session* until its connection is lost (see the module docstring)."""
        enquire_interval = self.bind.enquire_link_interval
        while not self._link.lost.is_set():
            if self._link.stopping:  # stopping, or revoked: not one more part, answers still come in
                await self._link.sleep_or_lost(1.0)
                continue
            now = time.monotonic()
            self._link.check_liveness(session, now, enquire_interval)
            if now < self._pause_until:
                self._link.move(BindEvent.SLOW_DOWN)
                await self._link.sleep_or_lost(self._pause_until - now)
                continue
            self._link.move(BindEvent.GO_ON)
            leases = self._leases
            if leases.live(now) and self.should_stage():
                await self._stage(leases.left - self._stager.ready)
                continue
            if leases.lease is not None:
                room = min(session.window_available, self._stager.ready)
                queued = self._stager.ready or self.queue
                if queued and leases.live(now) and leases.left > 0:
                    if room <= 0:  # the window is full: wait for a response, or the lease's end
                        self._link.wakeup.clear()
                        await self._link.sleep_or_lost(leases.deadline - now, wake=True)
                        continue
                    self._spend(session, min(room, leases.left))
                    continue
                leases.end()  # spent, expired, or nothing left to send: settle it (below)
            self.confirm(session)
            room = min(session.window_available, self.queued)
            if room <= 0:
                self._link.wakeup.clear()  # before the await below: a response meanwhile must wake us
                await self.settle()
                await self._link.sleep_or_lost(min(1.0, enquire_interval / 4), wake=True)
                continue
            await self._lease(session)

    async def _lease(self, session: Session) -> None:
        """Ask the limiter for the next lease and start spending it (one pass of the send loop)."""
        leases = self._leases
        # While busy, a lease is settled in the same call that asks for the next one. A lease is
        # ~lease_seconds of the operator's rate, spent as the window frees up, so an uncapped
        # bind asks the limiter once per lease, not once per window refill.
        settlement = leases.next_settlement()
        await self.settle()  # more than one ready (rare): the rest on their own
        share = self._lease_size()
        # Counted after the await: a withdraw meanwhile may have emptied the queue (want 0 once
        # divided the hold below by zero and ended the loop: issue 14).
        want = min(self.queued, share, 20 * self.bind.window)
        if want <= 0:
            if settlement is not None:
                leases.keep(settlement)
            return
        # A lease smaller than the rate's share (uncapped: the window and the queue bound it)
        # may be held longer, up to a second: it reserves fewer tokens than a full share would,
        # and a busy uncapped bind then asks about once a second instead of twenty times (an
        # actor call costs the ThrottleActor ~0.5 ms of CPU, more on a loaded machine).
        hold = self.lease_seconds if want >= share else min(1.0, self.lease_seconds * share / want)
        asked = time.monotonic()
        try:
            lease = await self.tokens.exchange(settlement, want, hold=hold)
        except Exception as exc:
            # The operator's limiter is unreachable (its actor restarting): the settlement is
            # lost with the call, which the limiter survives (an unsettled lease expires on its
            # own). Wait, and ask again; the connection has nothing to do with it.
            self._limiter_failed(exc)
            await self._link.sleep_or_lost(0.5)
            return
        if not lease.tokens:
            await self._link.sleep_or_lost(min(lease.retry_after, 1.0))
            return
        leases.begin(lease, asked=asked)  # offsets from the asking (see ulak.dispatch.leases)
        self._spend(session, min(session.window_available, self._stager.ready, lease.tokens))

    def _spend(self, session: Session, n: int) -> None:
        self._leases.spent(self._send(session, n))

    def confirm(self, session: Session) -> None:
        """Settle the spent leases whose PDUs have all been answered (``LeaseMeter.confirm``)."""
        self._leases.confirm(oldest_unanswered=session.oldest_sent_at(), last_answer=self._last_answer)

    async def settle(self) -> None:
        for settlement in self._leases.take_ready():
            try:
                await self.tokens.settle(
                    settlement.lease_id, used=settlement.used, last_sent_after=settlement.last_sent_after
                )
            except Exception as exc:  # the limiter unreachable: its lease stays charged until it expires
                self._limiter_failed(exc)

    def _limiter_failed(self, exc: Exception) -> None:
        self.stats.limiter_errors += 1
        self.stats.last_error = f"limiter: {type(exc).__name__}: {exc}"
        self._log.warning("limiter.unavailable", error=self.stats.last_error)

    def _lease_size(self) -> int:
        return max(1, int(min(self.operator.tps, self.learner.rate) * self.lease_seconds))

    def _send(self, session: Session, n: int) -> int:
        if self._link.lost.is_set() or self._link.stopping or not session.state.is_bound:
            return 0  # stopping (or revoked): not one more part, from any path
        out = []
        outbox = self._writer.outbox
        events, sent_at = outbox.events, outbox.sent_at  # Outbox.sent, inlined: the hottest loop
        self._stager.merge()  # parts answered "slow down" go first, in their order
        staged = self._staged
        for _ in range(min(n, len(staged), session.window_available)):
            item = staged.popleft()
            out.append(session.send(item.pdu, context=item))
            sent_at[id(item)] = len(events)
            events.append(PartSent(item.job, item.row, item.part, item.parts))
        self._link.write(b"".join(out))
        self.stats.submitted += len(out)
        return len(out)

    def refill(self, session: Session) -> None:
        """Spend the lease in hand on the window slots that answers just freed, here in the receive
        path; wake the send loop only when the lease cannot go on (spent, expired, nothing queued,
        or the bind must pause). Waking it for every answer cost more than the sending did."""
        leases = self._leases
        if leases.left > 0 and self._stager.ready and not self._link.lost.is_set():
            now = time.monotonic()
            if leases.live(now) and now >= self._pause_until:
                room = min(session.window_available, leases.left)
                if room > 0:
                    self._spend(session, room)
                if not self.should_stage():
                    return  # the send loop wakes at the lease's deadline, or when the window has room
        self._link.wakeup.set()

    def accepted(self, item: OutboundPart, raw: str) -> None:
        """The SMSC accepted *item* and gave it the message id *raw*."""
        self._last_answer = now = time.monotonic()
        self._accepts.add(now)
        self._writer.outbox.answered(item)
        if self._throttle_level and now >= self._pause_until:
            self._throttle_level = 0  # accepted after the pause: the next one starts short again
        message_id = normalize_message_id(raw, self.bind.resp_id_format)
        shown = raw if raw != message_id else ""
        event = PartAcked(item.job, item.row, item.part, item.parts, self._link.smsc, message_id, shown)
        self._writer.outbox.add(event)

    def throttled(self, item: OutboundPart, sequence: int, status: int) -> None:
        # The SMSC says "slow down": resend this part first, in order, and pause the whole bind. The
        # SMSC does not have it: if the ledger was told it was sent, it is told it came back, so a
        # runner that takes the job back (pause, restart) sends it again instead of skipping it.
        self.stats.throttled += 1
        if not self._writer.outbox.answered(item):
            self._writer.outbox.add(PartReturned(item.job, item.row, item.part, item.parts))
        self._stager.returned(sequence, item)
        now = time.monotonic()
        accepted = self._accepts.last_second(now)
        if self.learner.throttled(accepted_last_second=accepted):
            self._log.info(
                "bind.slowed", rate=round(self.learner.rate, 1), accepted=accepted, status=f"{status:#04x}"
            )
        if now < self._pause_until:
            return  # answers to what was in flight before the pause: one burst, one pause
        # The rest of the lease in hand would go at the old rate: give it up (settled as used).
        self._leases.end()
        # A short pause lets the SMSC's window empty; it doubles only while pauses keep ending in
        # another "slow down" (the learned rate does the lasting slowing down).
        self._throttle_level = min(self._throttle_level + 1, 6)
        pause = min(2.0, self._throttle_pause * 2 ** (self._throttle_level - 1)) * self._rng.uniform(0.8, 1.2)
        self._pause_until = now + pause

    def account_lost(self, outstanding: list[Outstanding]) -> None:
        lost = [o.context for o in outstanding if isinstance(o.context, OutboundPart)]
        if not lost:
            return
        self._last_answer = time.monotonic()  # whatever of them reached the SMSC did so by now
        if self.at_least_once:
            self._stager.front(lost)  # resend, in their original order, first
        else:
            for item in lost:
                self._writer.outbox.answered(item)
            self._writer.outbox.extend(PartUnknown(i.job, i.row, i.part, i.parts) for i in lost)
        self._log.warning("submit.in_flight_lost", count=len(lost), resend=self.at_least_once)

    def response(self, item: OutboundPart, resp: Any) -> None:
        """The SMSC's answer to *item*, other than a plain success read in place (``accepted``)."""
        status = resp.status
        if status == CommandStatus.ESME_ROK and type(resp) is SubmitSmResp:
            self.accepted(item, resp.message_id)
            return
        self._last_answer = time.monotonic()
        if status in _TRANSIENT:
            self.throttled(item, resp.sequence, int(status))
        else:
            self._writer.outbox.answered(item)
            self._writer.outbox.add(PartFailed(item.job, item.row, item.part, item.parts, int(status)))
