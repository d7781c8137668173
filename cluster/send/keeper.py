"""Making, moving, replacing and stopping a pool's binds (and their operators' throttles): where
each one runs (``placement: spread``), and what a dead one may have sent (its send record, settled
``unknown``). :class:`BindKeeper` is given the maker of the Ray actors (``actors/``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import ray
import redis
import structlog

from cluster.send.nodes import holds_nothing, spread_over
from cluster.send.refs import CALL_TIMEOUT, BindRef
from cluster.send.roster import BindRoster
from ulak import keys
from ulak.dispatch.ledger import RedisLedger
from ulak.dispatch.sendrecord import read_record
from ulak.records import bind_field
from ulak.settings import BindConfig, OperatorConfig, Settings

log = structlog.get_logger("ulak.pool")


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


class BindKeeper:
    """The lifecycle of the binds in *roster* (see the module docstring). *forget* is told of each
    bind made again (what the pool knew of the old one no longer holds)."""

    def __init__(
        self,
        settings: Settings,
        roster: BindRoster,
        maker: BindMaker,
        *,
        client: redis.Redis,
        redis_url: str,
        detached: bool,
        forget: Callable[[BindRef], None],
    ) -> None:
        self.settings = settings
        self.roster = roster
        self.maker = maker
        self.namespace = roster.namespace
        self.redis_url = redis_url
        self.detached = detached
        self._client = client
        self._forget = forget
        self._owned: dict[BindRef, Any] = {}

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
        starved = self.roster.starved()
        started = {ref: h.start.remote(bind_timeout) for ref, h in handles.items()}
        refs = [obj for ref, obj in started.items() if ref not in starved]
        if refs and bind_timeout > 0:
            ray.get(refs)
        elif refs:
            ray.wait(refs, num_returns=len(refs), timeout=10.0)
        self.roster.forget_handles()

    def _spread(self, op: OperatorConfig, new: list[BindRef]) -> dict[str, str]:
        """The node each of *new* should start on: with ``placement: spread`` (the default), an
        operator's binds go to different nodes among those that may hold them (the ones offering
        their ``node_resource``), each new one to the node holding fewest of the operator's binds,
        so that losing a node leaves every operator some binds. Ray's own choice packed all twelve
        binds of three operators onto one of two egress nodes (issue 30). Empty: Ray chooses (pack,
        no resource named, or a single node)."""
        nodes = spread_over(op)
        if not nodes:
            return {}
        held: dict[str, int] = dict.fromkeys(nodes, 0)
        others = [BindRef(op.name, b.name) for b in op.binds if BindRef(op.name, b.name) not in new]
        for described in self.roster.describe_all(others).values():  # where the operator's others are now
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
            nodes = spread_over(op)
            if not nodes:
                continue
            refs = [BindRef(op.name, b.name) for b in op.binds]
            seen = self.roster.describe_all(refs)
            held: dict[str, list[BindRef]] = {n: [] for n in nodes}
            for ref in refs:
                node = seen.get(ref, {}).get("node")
                if node in held:
                    held[node].append(ref)
            most = max(nodes, key=lambda n: len(held[n]))
            least = min(nodes, key=lambda n: len(held[n]))
            if len(held[most]) - len(held[least]) <= 1:
                continue
            idle = [ref for ref in held[most] if holds_nothing(seen[ref])]
            if idle:
                self._move(idle[-1])
                moved.append(idle[-1])
        return moved

    def _move(self, ref: BindRef) -> None:
        """Unbind *ref*, end its process and make it again where ``_spread`` puts it."""
        with contextlib.suppress(ValueError):
            handle = self.roster.actor(ref)
            with contextlib.suppress(ray.exceptions.RayError):
                ray.get(handle.stop.remote(), timeout=30)
            ray.kill(handle)
            del handle
        log.info("bind.moving", operator=ref.operator, bind=ref.bind)
        self._replace([ref])

    def stop(self) -> None:
        """Unbind every bind and end its process, and the throttles' (a stack that started them)."""
        for ref in self.roster.refs():  # one at a time: one that died must not keep the rest bound
            with contextlib.suppress(ValueError):
                handle = self.roster.actor(ref)
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.get(handle.stop.remote(), timeout=30)
                ray.kill(handle)
        for op in self.settings.operators:
            with contextlib.suppress(ValueError):
                ray.kill(self.roster.throttle(op.name))
        self.roster.forget_handles()
        self._owned.clear()

    def probe(self, timeout: float = CALL_TIMEOUT) -> tuple[list[BindRef], list[BindRef]]:
        """Every bind asked at once if it lives: (the dead, the rest). One slow to answer, or on a
        node Ray has not given up on yet, is not known dead."""
        dead, _ = self._look(timeout)
        return dead, [ref for ref in self.roster.refs() if ref not in dead]

    def _look(self, timeout: float) -> tuple[list[BindRef], list[BindRef]]:
        """Every bind asked at once if it lives: (the dead, those that did not answer in *timeout*).
        One no node can hold is not asked (the call would wait to be placed), only looked up: with
        no process of it, it is dead (made again, placed when a node offers its resource)."""
        starved = self.roster.starved()
        dead = [ref for ref in self.roster.refs() if ref in starved and not self.roster.exists(ref)]
        unreachable: list[BindRef] = []
        for ref, said in self.roster.ask(
            [r for r in self.roster.refs() if r not in starved], timeout
        ).items():
            if isinstance(said, ValueError | ray.exceptions.ActorDiedError):
                dead.append(ref)
            elif isinstance(said, Exception):
                unreachable.append(ref)
        return dead, unreachable

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
        self.roster.forget_handles()
        for ref in dead:
            self.settle_dead(ref)
            self._client.hincrby(keys.BIND_REPLACEMENTS, bind_field(ref.operator, ref.bind), 1)
            # Ray keeps a dead actor's name while any handle to it lives: ours go first.
            self._owned.pop(ref, None)
            self._forget(ref)
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
                self.roster.describe_one(ref, 1.0)
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
            return str(self.roster.describe_one(ref, 30)["send_record"])
        except (ValueError, ray.exceptions.RayError):
            return None
