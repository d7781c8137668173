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

import contextlib
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import ray
import structlog

from ulak import keys, redisclient
from ulak.dispatch.batch import pack_parts
from ulak.dispatch.bindstate import UP, BindState
from ulak.dispatch.ledger import RedisLedger
from ulak.dispatch.part import OutboundPart
from ulak.dispatch.sendrecord import read_record
from ulak.records import bind_field
from ulak.settings import BindConfig, OperatorConfig, Settings

log = structlog.get_logger("ulak.pool")


class BindDied(Exception):
    """A bind's process died under a call: ``BindPool.replace_dead`` settles it and makes a new one."""


class BindUnreachable(BindDied):
    """A bind did not answer a call: its node, the node's raylet or the network to it went away, or
    the process is stuck. It may still be alive (a network that comes back), so what it holds is
    neither sent elsewhere nor settled until Ray says it died (``BindPool.recover``)."""


# What Ray raises when an actor's process, its node, that node's raylet or the network to it goes
# away. A real machine that dies or drops off the network shows first as ActorUnavailableError, RPC
# errors and timeouts, and only once Ray's health checks give up on the node as ActorDiedError (issue
# 30: the runner treated the first kind as its own bug, and failed the job).
ACTOR_LOST: tuple[type[Exception], ...] = (
    ray.exceptions.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray.exceptions.NodeDiedError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.ObjectLostError,  # and OwnerDiedError
    ray.exceptions.RpcError,
    ray.exceptions.GetTimeoutError,
    ray.exceptions.RaySystemError,
)
CALL_TIMEOUT = 10.0  # seconds a bind may take to answer a call before it counts as unreachable
DESCRIBE_TIMEOUT = 0.75  # the API's look at every bind, all asked at once: it answers within ~1 s


@dataclass(frozen=True)
class BindRef:
    """One bind of the pool, as its callers name it."""

    operator: str
    bind: str

    @property
    def actor_name(self) -> str:
        """The name of its SmppConnectionActor (Ray runs one live actor per name)."""
        return f"bind:{self.operator}:{self.bind}"


def throttle_actor_name(operator: str) -> str:
    """The name of *operator*'s ThrottleActor, which every bind of it finds by."""
    return f"throttle:{operator}"


Take = Callable[[str], list[OutboundPart]]


class BindMaker(Protocol):
    """What makes a pool's Ray actors (``actors.factories.RayBinds``): the pool decides which binds
    run and on which node, the maker how (placement and restart policy, all in ``actors/``)."""

    def throttle(self, operator: OperatorConfig, *, namespace: str, detached: bool) -> Any: ...

    def connection(
        self,
        bind: BindConfig,
        operator: OperatorConfig,
        *,
        redis_url: str,
        throttle: Any,
        namespace: str,
        detached: bool,
        node: str | None,
    ) -> Any: ...


STARVED_RECHECK = 1.0  # seconds between two looks at which custom resources the live nodes offer


class BindPool:
    """Every configured operator's binds (see the module docstring)."""

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
        self.maker = maker
        self.redis_url = redis_url
        self.namespace = namespace
        self.detached = detached
        self.max_backlog = settings.jobs.max_backlog if max_backlog is None else max_backlog
        self._client = redisclient.client(redis_url)
        self._handles: dict[BindRef, Any] | None = None
        self._owned: dict[BindRef, Any] = {}
        self._backlog: dict[BindRef, int] = {}
        self._turns = itertools.count()
        # Binds no live node can hold, as of when (``_placed``).
        self._starved: set[BindRef] = set()
        self._starved_at = -1e9

    def close(self) -> None:
        self._client.close()

    # --------------------------------------------------------------------------------- creation

    def ensure(self, *, bind_timeout: float = 0.0, only: Sequence[BindRef] | None = None) -> None:
        """Make (or find) the throttles and binds, *only* those if given, and start them; wait up to
        *bind_timeout* seconds for them to bind (0: return once they are started, binding goes on
        inside each)."""
        wanted = set(only) if only is not None else None
        handles: dict[BindRef, Any] = {}
        for op in self.settings.operators:
            binds = [b for b in op.binds if wanted is None or BindRef(op.name, b.name) in wanted]
            if not binds:
                continue
            throttle = self.maker.throttle(op, namespace=self.namespace, detached=self.detached)
            nodes = self._spread(op, [BindRef(op.name, b.name) for b in binds])
            for b in binds:
                handles[BindRef(op.name, b.name)] = self.maker.connection(
                    b,
                    op,
                    redis_url=self.redis_url,
                    throttle=throttle,
                    namespace=self.namespace,
                    detached=self.detached,
                    node=nodes.get(b.name),
                )
        if not self.detached:  # an actor that is not detached lives as long as a handle to it
            self._owned.update(handles)
        # A bind no node can hold yet starts once one joins: nobody waits for it (a runner that did
        # said nothing for those seconds).
        starved = self._starved_binds()
        started = {ref: h.start.remote(bind_timeout) for ref, h in handles.items()}
        refs = [obj for ref, obj in started.items() if ref not in starved]
        if refs and bind_timeout > 0:
            ray.get(refs)
        elif refs:
            ray.wait(refs, num_returns=len(refs), timeout=10.0)
        self._handles = None

    def _spread(self, op: OperatorConfig, new: list[BindRef]) -> dict[str, str]:
        """The node each of *new* should start on: with ``placement: spread`` (the default), an
        operator's binds go to different nodes among those that may hold them (the ones offering
        their ``node_resource``), each new one to the node holding fewest of the operator's binds,
        so that losing a node leaves every operator some binds. Ray's own choice packed all twelve
        binds of three operators onto one of two egress nodes (issue 30). Empty: Ray chooses (pack,
        no resource named, or a single node)."""
        nodes = _spread_over(op)
        if not nodes:
            return {}
        held: dict[str, int] = dict.fromkeys(nodes, 0)
        others = [BindRef(op.name, b.name) for b in op.binds if BindRef(op.name, b.name) not in new]
        for described in self._describe_all(others).values():  # where the operator's others are now
            if described.get("node") in held:
                held[described["node"]] += 1
        chosen: dict[str, str] = {}
        for ref in new:
            node = min(nodes, key=lambda n: (held[n], nodes.index(n)))
            held[node] += 1
            chosen[ref.bind] = node
        return chosen

    def rebalance(self) -> list[BindRef]:
        """Move binds so that each ``spread`` operator's binds are on as many of the nodes that may
        hold them as they can be: binds made while one egress node was up all went there, and a
        node that comes back after a loss holds none. At most one bind per operator per call, and
        only one that holds nothing (call it while no job sends: a bind moved under a job is a bind
        lost to it, which it recovers from, but needlessly). Returns the binds moved."""
        moved: list[BindRef] = []
        for op in self.settings.operators:
            nodes = _spread_over(op)
            if not nodes:
                continue
            refs = [BindRef(op.name, b.name) for b in op.binds]
            seen = self._describe_all(refs)
            held: dict[str, list[BindRef]] = {n: [] for n in nodes}
            for ref in refs:
                node = seen.get(ref, {}).get("node")
                if node in held:
                    held[node].append(ref)
            most = max(nodes, key=lambda n: len(held[n]))
            least = min(nodes, key=lambda n: len(held[n]))
            if len(held[most]) - len(held[least]) <= 1:
                continue
            idle = [ref for ref in held[most] if _idle(seen[ref])]
            if idle:
                self._move(idle[-1])
                moved.append(idle[-1])
        return moved

    def _move(self, ref: BindRef) -> None:
        """Unbind *ref*, end its process and make it again where ``_spread`` puts it."""
        with contextlib.suppress(ValueError):
            handle = self._actor(ref)
            with contextlib.suppress(ray.exceptions.RayError):
                ray.get(handle.stop.remote(), timeout=30)
            ray.kill(handle)
            del handle
        log.info("bind.moving", operator=ref.operator, bind=ref.bind)
        self._replace([ref])

    def _ask(self, refs: list[BindRef], timeout: float) -> dict[BindRef, dict[str, Any] | Exception]:
        """What each of *refs* says of itself, all asked at once and none waited for past *timeout*:
        its description, or why not (``ValueError``: no actor of that name; ``GetTimeoutError``: no
        answer in time; ``ActorDiedError``; another ``RayError``: its node or network lost)."""
        out: dict[BindRef, dict[str, Any] | Exception] = {}
        asked = []
        for ref in refs:
            try:
                asked.append((ref, self._actor(ref).describe.remote()))
            except ValueError as exc:
                out[ref] = exc
        if asked:
            ray.wait([obj for _, obj in asked], num_returns=len(asked), timeout=timeout)
        for ref, obj in asked:
            try:
                out[ref] = dict(ray.get(obj, timeout=0))
            except ray.exceptions.RayError as exc:
                out[ref] = exc
        return out

    def _describe_all(self, refs: list[BindRef]) -> dict[BindRef, dict[str, Any]]:
        """What each of *refs* says of itself (those that do not answer left out)."""
        return {ref: d for ref, d in self._ask(refs, DESCRIBE_TIMEOUT).items() if isinstance(d, dict)}

    def stop(self) -> None:
        """Unbind every bind and end its process, and the throttles' (a stack that started them)."""
        for ref in self.refs():  # one at a time: one that died must not keep the rest bound
            with contextlib.suppress(ValueError):
                handle = self._actor(ref)
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.get(handle.stop.remote(), timeout=30)
                ray.kill(handle)
        for op in self.settings.operators:
            with contextlib.suppress(ValueError):
                ray.kill(self.throttle(op.name))
        self._handles = None
        self._owned.clear()

    def refs(self) -> list[BindRef]:
        """Every configured bind, in the config's order."""
        return [BindRef(op.name, b.name) for op in self.settings.operators for b in op.binds]

    def throttle(self, operator: str) -> Any:
        """*operator*'s ThrottleActor (ValueError if it has none)."""
        return ray.get_actor(throttle_actor_name(operator), namespace=self.namespace)

    def _actor(self, ref: BindRef) -> Any:
        """*ref*'s actor, live or dead (ValueError when Ray has no actor of that name)."""
        return ray.get_actor(ref.actor_name, namespace=self.namespace)

    def _describe(self, ref: BindRef, timeout: float) -> dict[str, Any]:
        """What *ref*'s actor says of itself (ValueError: no actor; a RayError: dead or slow)."""
        described: dict[str, Any] = ray.get(self._actor(ref).describe.remote(), timeout=timeout)
        return described

    def handles(self) -> dict[BindRef, Any]:
        """The live binds by name (looked up once; again after a replacement)."""
        if self._handles is None:
            found: dict[BindRef, Any] = {}
            for ref in self.refs():
                try:
                    found[ref] = self._actor(ref)
                except ValueError:
                    raise BindDied(f"bind {ref.operator}/{ref.bind} has no process") from None
            self._handles = found
        return self._handles

    def binds_of(self, operator: str) -> list[BindRef]:
        """*operator*'s binds that can take a call now (``_placed``)."""
        return self._placed([ref for ref in self.handles() if ref.operator == operator])

    def _placed(self, refs: list[BindRef]) -> list[BindRef]:
        """Those of *refs* that some live node can hold.

        A bind whose ``node_resource`` no live node offers (every egress node gone) waits to be
        placed, and every call to it would wait as long: the runner's feed hung on it. A timeout
        would not do, since a batch handed to a waiting actor is delivered once it is placed, and
        must not be sent elsewhere as well. Such a bind holds nothing (a process of it that ran
        held the resource on a node that is gone, and died with it), so it is left out of every
        call until a node offers the resource again; then it is called, and answers once placed.
        Not "has it answered yet": a new runner's pool has heard from no bind, and the binds an
        earlier runner fed hold its parts (skipped, a resumed job sent them twice)."""
        starved = self._starved_binds()
        return [ref for ref in refs if ref not in starved]

    def _starved_binds(self) -> set[BindRef]:
        """The binds whose ``node_resource`` no live node offers, looked at once a second at most
        (``ray.cluster_resources`` is a call to Ray's control store; feed rounds come every few ms)."""
        now = time.monotonic()
        if now - self._starved_at > STARVED_RECHECK:
            self._starved = {
                BindRef(op.name, b.name)
                for op in self.settings.operators
                for b in op.binds
                if b.node_resource and not _offered(b.node_resource)
            }
            self._starved_at = now
        return self._starved

    def _calls(self) -> dict[BindRef, Any]:
        """The handles of the binds that can take a call now."""
        handles = self.handles()
        return {ref: handles[ref] for ref in self._placed(list(handles))}

    # ---------------------------------------------------------------------------------- calls

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

    def feed(self, job: str, operators: Sequence[str], take: Take, *, weight: float = 1.0) -> int:
        """One round: to every bind of *operators* with room, a batch from ``take(operator)`` (an empty
        batch: nothing more for it now); the binds over ``max_backlog`` are asked how far they got
        instead. Returns how many batches went out (none: every bind is full, let them drain).

        One round trip for all of it: a round of one bind per operator, waiting for its answer,
        starved the binds (at ~45 ms an actor call on a busy machine a bind ran its queue dry
        between two batches; BENCHMARKS.md, "Fourth session of 2026-11-28")."""
        turn = next(self._turns)
        handles = self.handles()
        calls: list[tuple[BindRef, Any]] = []
        polls: list[tuple[BindRef, Any]] = []
        for name in operators:
            refs = self.binds_of(name)
            for k in range(len(refs)):
                ref = refs[(turn + k) % len(refs)]
                if self._backlog.get(ref, 0) > self.max_backlog:
                    polls.append((ref, handles[ref].backlog.remote()))
                    continue
                chunk = take(name)
                if chunk:
                    calls.append((ref, handles[ref].enqueue.remote(pack_parts(chunk), weight)))
        answers = calls + polls
        for (ref, _), queued in zip(answers, self._get(answers), strict=True):
            self._backlog[ref] = queued
        return len(calls)

    def enqueue(self, ref: BindRef, parts: list[OutboundPart], *, weight: float = 1.0) -> None:
        self._get([(ref, self.handles()[ref].enqueue.remote(pack_parts(parts), weight))])

    def withdraw(self, job: str) -> list[tuple[BindRef, list[OutboundPart]]]:
        """Take *job*'s queued parts back from every bind; each writes its ledger events first, so
        afterwards the ledger holds every part of *job* sent so far."""
        handles = self._calls()
        taken = self._get([(ref, h.withdraw.remote(job)) for ref, h in handles.items()])
        return list(zip(handles, taken, strict=True))

    def pending(self, job: str) -> int:
        """*job*'s parts the binds still hold: queued, or sent and not yet answered."""
        return int(sum(self._get([(ref, h.pending.remote(job)) for ref, h in self._calls().items()])))

    def queued(self, job: str) -> int:
        """*job*'s parts the binds hold and have not sent yet."""
        return int(sum(self._get([(ref, h.queued.remote(job)) for ref, h in self._calls().items()])))

    def drain(self, timeout: float) -> None:
        """Wait until no bind holds anything, and its events are written."""
        calls = [(ref, h.drain.remote(timeout)) for ref, h in self._calls().items()]
        self._get(calls, timeout=timeout + CALL_TIMEOUT)

    def describe(self, *, timeout: float = DESCRIBE_TIMEOUT) -> dict[str, list[dict[str, Any]]]:
        """Each operator's binds as they describe themselves, every bind asked at once and none
        waited for longer than *timeout* (a lost node's binds hung the API for 10 s, one after the
        other: issue 30). One that does not answer is ``unreachable`` (its node may be lost or cut
        off: it is made again elsewhere once Ray says so), one whose process is gone ``missing``."""
        starved = self._starved_binds()
        entries: dict[BindRef, dict[str, Any]] = {}
        for op in self.settings.operators:
            for b in op.binds:
                ref = BindRef(op.name, b.name)
                entries[ref] = {"bind": b.name, "window": b.window}
                if ref in starved:
                    entries[ref].update(
                        state=BindState.UNPLACED,
                        last_error=f"no node in the cluster offers the {b.node_resource!r} resource; "
                        f"start one with ray start --resources='{{\"{b.node_resource}\": 1}}'",
                    )
        for ref, said in self._ask([r for r in entries if r not in starved], timeout).items():
            if isinstance(said, dict):
                entries[ref].update(said)
            elif isinstance(said, ValueError | ray.exceptions.ActorDiedError):
                entries[ref].update(state=BindState.MISSING, last_error=type(said).__name__)
            elif isinstance(said, ray.exceptions.GetTimeoutError):
                entries[ref].update(state=BindState.UNREACHABLE, last_error=f"no answer in {timeout:g} s")
            else:
                entries[ref].update(state=BindState.UNREACHABLE, last_error=type(said).__name__)
        nodes = _node_addresses()
        out: dict[str, list[dict[str, Any]]] = {}
        for ref, entry in entries.items():
            if entry.get("node"):
                entry["node_ip"] = nodes.get(entry["node"], "")
            out.setdefault(ref.operator, []).append(entry)
        return out

    # ------------------------------------------------------------------------------- replacement

    def probe(self, timeout: float = CALL_TIMEOUT) -> tuple[list[BindRef], list[BindRef]]:
        """Every bind asked at once if it lives: (the dead, the rest). One slow to answer, or on a
        node Ray has not given up on yet, is not known dead."""
        dead, _ = self._look(timeout)
        return dead, [ref for ref in self.refs() if ref not in dead]

    def _look(self, timeout: float) -> tuple[list[BindRef], list[BindRef]]:
        """Every bind asked at once if it lives: (the dead, those that did not answer in *timeout*).
        One no node can hold is not asked (the call would wait to be placed), only looked up: with
        no process of it, it is dead (made again, placed when a node offers its resource)."""
        starved = self._starved_binds()
        dead = [ref for ref in self.refs() if ref in starved and not self._exists(ref)]
        unreachable: list[BindRef] = []
        for ref, said in self._ask([r for r in self.refs() if r not in starved], timeout).items():
            if isinstance(said, ValueError | ray.exceptions.ActorDiedError):
                dead.append(ref)
            elif isinstance(said, Exception):
                unreachable.append(ref)
        return dead, unreachable

    def _exists(self, ref: BindRef) -> bool:
        try:
            self._actor(ref)
        except ValueError:
            return False
        return True

    def recover(self, *, timeout: float = 2.0) -> tuple[list[BindRef], list[BindRef]]:
        """After a call raised :class:`BindDied` or :class:`BindUnreachable`: the binds that died
        are settled and made again (on another node when theirs is gone); returns those, and the
        binds that did not answer within *timeout*. What an unanswering bind holds stays where it
        is: it may still send it (a network that comes back), so nothing of it is sent elsewhere
        until Ray says the bind died (``health_check_*``: ~5 s on a node ``ulak node`` started)."""
        dead, unreachable = self._look(timeout)
        self._replace(dead)
        return dead, unreachable

    def replace_dead(self) -> list[BindRef]:
        """Settle every dead bind (``settle_dead``) and start a new one in its place; returns them."""
        dead, _ = self.probe()
        self._replace(dead)
        return dead

    def _replace(self, dead: list[BindRef]) -> None:
        self._handles = None
        for ref in dead:
            self.settle_dead(ref)
            self._client.hincrby(keys.BIND_REPLACEMENTS, bind_field(ref.operator, ref.bind), 1)
            # Ray keeps a dead actor's name while any handle to it lives: ours go first.
            self._owned.pop(ref, None)
            self._backlog.pop(ref, None)
            self._wait_released(ref)
        if dead:
            self.ensure(only=dead)

    def _wait_released(self, ref: BindRef, timeout: float = 60.0) -> None:
        """Until Ray has let go of a dead bind's name (it keeps it while a handle to the dead actor
        lives, and a moment after): made again before, "get if exists" would hand back the dead
        actor, and a new name would be refused as taken."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._describe(ref, 1.0)
                return  # alive after all (someone made it again): nothing to release
            except ValueError:
                return  # released
            except ray.exceptions.RayError:
                pass
            time.sleep(0.2)  # out of the handler: its traceback would keep the handle, and the name
        log.error("bind.name_held", operator=ref.operator, bind=ref.bind, seconds=timeout)

    def settle_dead(self, ref: BindRef) -> int:
        """Make ``unknown`` every part in the send records of *ref*'s dead processes whose outcome the
        ledger lacks: they may have reached the SMSC, and at-most-once never sends them again. The
        parts a dead bind held and had not staged were never sent: whoever feeds the job sends them
        again. Returns how many parts were settled."""
        ledger = self.settings.operator(ref.operator).ledger_name
        registry = keys.bind_records(ref.operator, ref.bind, ledger=ledger)
        live = self._live_record(ref)
        settled = 0
        members: set[bytes] = self._client.smembers(registry)  # type: ignore[assignment]
        for raw in members:
            record = raw.decode()
            if record == live:
                continue
            lost = read_record(self._client, record)
            RedisLedger(self._client, ledger=ledger).apply_in_batches(lost)
            self._client.delete(record)
            self._client.srem(registry, record)
            settled += len(lost)
            log.warning("bind.settled", operator=ref.operator, bind=ref.bind, send_record=len(lost))
        return settled

    def _live_record(self, ref: BindRef) -> str | None:
        try:
            return str(self._describe(ref, 30)["send_record"])
        except (ValueError, ray.exceptions.RayError):
            return None


def _idle(described: dict[str, Any]) -> bool:
    """A bind that holds nothing: no part queued, staged or on the wire, no job's parts."""
    return not (
        described.get("queued")
        or described.get("staged")
        or described.get("jobs")
        or "SubmitSm" in (described.get("in_flight") or [])
    )


def _spread_over(op: OperatorConfig) -> list[str]:
    """The live nodes *op*'s binds are spread over, in a fixed order: those offering its binds'
    ``node_resource``. Empty when there is nothing to spread: ``placement: pack``, no resource named,
    or fewer than two such nodes (Ray places the binds then)."""
    resource = next((b.node_resource for b in op.binds if b.node_resource), None)
    if op.placement != "spread" or resource is None:
        return []
    nodes = sorted(_nodes_offering(resource))
    return nodes if len(nodes) >= 2 else []


def _nodes_offering(resource: str) -> list[str]:
    """The live nodes that offer *resource*, by id."""
    return [
        str(n["NodeID"])
        for n in ray.nodes()  # type: ignore[no-untyped-call]
        if n.get("Alive") and n.get("Resources", {}).get(resource, 0) > 0
    ]


def _node_addresses() -> dict[str, str]:
    """Every node's address by id (what ``/v1/operators`` shows beside each bind)."""
    try:
        return {str(n["NodeID"]): str(n.get("NodeManagerAddress", "")) for n in ray.nodes()}  # type: ignore[no-untyped-call]
    except Exception:
        return {}


def _offered(resource: str) -> float:
    """How much of a custom resource the cluster's live nodes offer (0: no node can hold it)."""
    offered: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return offered.get(resource, 0.0)


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
