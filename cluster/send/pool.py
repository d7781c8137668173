"""The bind pool: every operator's binds as one object, between whoever feeds them and Ray.

A job's runner (``cluster.send.runner``), a one-off campaign (``scripts.bench.campaign``), the control plane
(``cluster.plane``) and the local stack (``actors.local``) all reach binds through here, and this is
the one place that makes them (with their operator's throttle): ``ensure``. What they ask of it is
what dispatch needs, in batches, one round trip at a time:

* ``feed``: one round, a batch to every bind with room, and how far the full ones got;
* ``withdraw`` a job's queued parts (each bind writes its ledger events first), ``enqueue`` some back;
* ``pending`` / ``queued``: a job's parts still in the binds;
* ``replace_dead``: the binds whose process died, settled and made again.

A bind whose process dies under a call raises :class:`BindDied`. What it may have sent is settled by
its send record (``ulak.dispatch.sendrecord``): each bind process registers its record under its
bind's name (``keys.bind_records``), so a pool that never saw the dead process still finds it, and
since Ray runs one live actor per name, every record there but the live one's is a dead process's.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import ray

from cluster.send.backlog import Backlogs
from cluster.send.keeper import BindKeeper, BindMaker
from cluster.send.refs import (
    ACTOR_LOST,
    CALL_TIMEOUT,
    DESCRIBE_TIMEOUT,
    BindDied,
    BindRef,
    BindUnreachable,
    Take,
    throttle_actor_name,
)
from cluster.send.roster import BindRoster
from ulak import redisclient
from ulak.dispatch.batch import pack_parts
from ulak.dispatch.bindstate import UP
from ulak.dispatch.part import OutboundPart
from ulak.refusals import Scope
from ulak.settings import Settings

__all__ = [
    "BindDied",
    "BindMaker",
    "BindPool",
    "BindRef",
    "BindUnreachable",
    "Take",
    "operator_state",
    "throttle_actor_name",
]


class BindPool:
    """Every configured operator's binds (see the module docstring): the calls that feed and ask
    them are its own; finding them is its roster's (``BindRoster``), making and replacing them its
    keeper's (``BindKeeper``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        redis_url: str,
        namespace: str,
        maker: BindMaker,
        detached: bool = True,
        max_backlog: int | None = None,
    ) -> None:
        self.settings = settings
        self.namespace = namespace
        self.max_backlog = settings.jobs.max_backlog if max_backlog is None else max_backlog
        self._client = redisclient.client(redis_url)
        self._backlogs = Backlogs(self.max_backlog)
        self._turns = itertools.count()
        self.roster = BindRoster(settings, namespace=namespace)
        self.keeper = BindKeeper(
            settings,
            self.roster,
            maker,
            client=self._client,
            redis_url=redis_url,
            detached=detached,
            forget=self._forget,
        )

    def close(self) -> None:
        self._client.close()

    def _get(self, calls: list[tuple[BindRef, Any]], timeout: float = CALL_TIMEOUT) -> list[Any]:
        """Every call's answer, waiting *timeout* seconds for all of them. A bind whose process died
        raises :class:`BindDied`; one that did not answer, or whose node or network Ray lost, raises
        :class:`BindUnreachable` (both name every such bind, after the others have answered)."""
        if not calls:
            return []
        objects = [obj for _, obj in calls]
        deadline = time.monotonic() + timeout
        try:  # the common case in one call: every bind answers
            return list(ray.get(objects, timeout=timeout))
        except (ray.exceptions.RayError, ValueError):
            pass  # sorted out below, bind by bind (the others given the rest of the time)
        left = max(0.0, deadline - time.monotonic())
        ready, _ = ray.wait(objects, num_returns=len(objects), timeout=left)
        answered = set(ready)
        results: list[Any] = []
        dead: list[BindRef] = []
        unreachable: list[tuple[BindRef, str]] = []
        for ref, obj in calls:
            if obj not in answered:
                unreachable.append((ref, f"no answer in {timeout:g} s"))
                continue
            try:
                results.append(ray.get(obj))
            except ray.exceptions.ActorDiedError:
                dead.append(ref)
            except ray.exceptions.RayTaskError as exc:
                # A bind that could not reach Redis (a withdraw's flush, say) is Redis away, which the
                # runner waits out, not the job's failure (it was, with a shard down for 4 s: issue 15).
                if isinstance(exc.cause, redisclient.RedisUnavailable):
                    raise exc.cause from None
                raise
            except ACTOR_LOST as exc:
                unreachable.append((ref, type(exc).__name__))
        if dead:
            raise BindDied("bind " + ", ".join(f"{r.operator}/{r.bind}" for r in dead) + " died")
        if unreachable:
            names = ", ".join(f"{r.operator}/{r.bind} ({why})" for r, why in unreachable)
            raise BindUnreachable(f"bind {names} did not answer")
        return results

    def feed(
        self,
        job: str,
        operators: Sequence[str],
        take: Take,
        *,
        weight: float = 1.0,
        scope: Scope | None = None,
    ) -> int:
        """One round: to every bind of *operators* with room, a batch from ``take(operator)`` (an empty
        batch: nothing more for it now); the binds over ``max_backlog`` are asked how far they got
        instead, when they may be under it again (``cluster.send.backlog``). Returns how many batches
        went out (none: every bind is full, let them drain).

        One round trip for all of it: a round of one bind per operator, waiting for its answer,
        starved the binds (at ~45 ms an actor call on a busy machine a bind ran its queue dry
        between two batches; BENCHMARKS.md, "Fourth session of 2026-11-28")."""
        turn = next(self._turns)
        handles = self.roster.handles()
        calls: list[tuple[BindRef, Any]] = []
        polls: list[tuple[BindRef, Any]] = []
        backlogs = self._backlogs
        for name in operators:
            refs = self.roster.binds_of(name)
            for k in range(len(refs)):
                ref = refs[(turn + k) % len(refs)]
                if backlogs.full(ref):  # asked how far it got when it may be under the limit again
                    if backlogs.due(ref):
                        polls.append((ref, handles[ref].backlog.remote()))
                    continue
                chunk = take(name)
                if chunk:
                    calls.append((ref, handles[ref].enqueue.remote(pack_parts(chunk), weight, scope)))
        answers = self._get(calls + polls)
        for (ref, _), queued in zip(calls, answers[: len(calls)], strict=True):
            backlogs.fed(ref, queued)
        for (ref, _), queued in zip(polls, answers[len(calls) :], strict=True):
            backlogs.answered(ref, queued)
        return len(calls)

    def enqueue(self, ref: BindRef, parts: list[OutboundPart], *, weight: float = 1.0) -> None:
        self._get([(ref, self.roster.handles()[ref].enqueue.remote(pack_parts(parts), weight))])

    def withdraw(self, job: str) -> list[tuple[BindRef, list[OutboundPart]]]:
        """Take *job*'s queued parts back from every bind; each writes its ledger events first, so
        afterwards the ledger holds every part of *job* sent so far."""
        handles = self.roster.calls()
        taken = self._get([(ref, h.withdraw.remote(job)) for ref, h in handles.items()])
        return list(zip(handles, taken, strict=True))

    def pending(self, job: str) -> int:
        """*job*'s parts the binds still hold: queued, or sent and not yet answered."""
        return int(sum(self._get([(ref, h.pending.remote(job)) for ref, h in self.roster.calls().items()])))

    def queued(self, job: str) -> int:
        """*job*'s parts the binds hold and have not sent yet."""
        return int(sum(self._get([(ref, h.queued.remote(job)) for ref, h in self.roster.calls().items()])))

    def drain(self, timeout: float) -> None:
        """Wait until no bind holds anything, and its events are written."""
        calls = [(ref, h.drain.remote(timeout)) for ref, h in self.roster.calls().items()]
        self._get(calls, timeout=timeout + CALL_TIMEOUT)

    def _forget(self, ref: BindRef) -> None:
        """*ref* was made again: its backlog was the old process's."""
        self._backlogs.forget(ref)

    # ------------------------------------------------------------ the roster's and the keeper's

    def ensure(self, *, bind_timeout: float = 0.0, only: Sequence[BindRef] | None = None) -> None:
        self.keeper.ensure(bind_timeout=bind_timeout, only=only)

    def rebalance(self) -> list[BindRef]:
        return self.keeper.rebalance()

    def recover(self, *, timeout: float = 2.0) -> tuple[list[BindRef], list[BindRef]]:
        return self.keeper.recover(timeout=timeout)

    def probe(self, timeout: float = CALL_TIMEOUT) -> tuple[list[BindRef], list[BindRef]]:
        return self.keeper.probe(timeout)

    def replace_dead(self) -> list[BindRef]:
        return self.keeper.replace_dead()

    def settle_dead(self, ref: BindRef) -> int:
        return self.keeper.settle_dead(ref)

    def stop(self) -> None:
        self.keeper.stop()

    def describe(self, *, timeout: float = DESCRIBE_TIMEOUT) -> dict[str, list[dict[str, Any]]]:
        return self.roster.describe(timeout=timeout)

    def throttle(self, operator: str) -> Any:
        return self.roster.throttle(operator)

    def handles(self) -> dict[BindRef, Any]:
        return self.roster.handles()

    def refs(self) -> list[BindRef]:
        return self.roster.refs()


def operator_state(binds: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """An operator's state from its binds' descriptions: ``up`` (every bind sending), ``degraded``
    (some), ``down`` (none: its rows wait); and why, naming each bind that cannot send."""
    idle = [b for b in binds if b.get("state") not in UP]
    state = "up" if not idle else "down" if len(idle) == len(binds) else "degraded"
    return state, "; ".join(_why_idle(b) for b in idle)


def _why_idle(bind: dict[str, Any]) -> str:
    """``t1: reconnecting for 94 s, 12 attempts (ConnectionRefusedError: …)``."""
    why = f"{bind.get('bind')}: {bind.get('state')}"
    if bind.get("down_for"):
        why += f" for {bind['down_for']:.0f} s"
    if bind.get("attempts"):
        why += f", {bind['attempts']} attempt" + ("s" if bind["attempts"] != 1 else "")
    if bind.get("last_error"):
        why += f" ({bind['last_error']})"
    return why
