"""The configured binds by name, as Ray holds them: each one's actor, all of them asked at once, and
which of them no live node can hold now (their ``node_resource`` offered by none). The bind pool,
its keeper and the control plane's view of the binds find them through :class:`BindRoster`."""

from __future__ import annotations

import time
from typing import Any

import ray

from cluster.send.nodes import node_addresses, offered
from cluster.send.refs import DESCRIBE_TIMEOUT, BindDied, BindRef, throttle_actor_name
from ulak.dispatch.bindstate import BindState
from ulak.settings import Settings

STARVED_RECHECK = 1.0  # seconds between two looks at which custom resources the live nodes offer


class BindRoster:
    """The binds of *settings* in Ray's *namespace* (see the module docstring)."""

    def __init__(self, settings: Settings, *, namespace: str) -> None:
        self.settings = settings
        self.namespace = namespace
        self._handles: dict[BindRef, Any] | None = None
        # Binds no live node can hold, as of when (``placed``).
        self._starved: set[BindRef] = set()
        self._starved_at = -1e9

    def forget_handles(self) -> None:
        """Look the binds up again at the next call (after some were made again)."""
        self._handles = None

    def refs(self) -> list[BindRef]:
        """Every configured bind, in the config's order."""
        return [BindRef(op.name, b.name) for op in self.settings.operators for b in op.binds]

    def throttle(self, operator: str) -> Any:
        """*operator*'s ThrottleActor (ValueError if it has none)."""
        return ray.get_actor(throttle_actor_name(operator), namespace=self.namespace)

    def actor(self, ref: BindRef) -> Any:
        """*ref*'s actor, live or dead (ValueError when Ray has no actor of that name)."""
        return ray.get_actor(ref.actor_name, namespace=self.namespace)

    def describe_one(self, ref: BindRef, timeout: float) -> dict[str, Any]:
        """What *ref*'s actor says of itself (ValueError: no actor; a RayError: dead or slow)."""
        described: dict[str, Any] = ray.get(self.actor(ref).describe.remote(), timeout=timeout)
        return described

    def handles(self) -> dict[BindRef, Any]:
        """The live binds by name (looked up once; again after a replacement)."""
        if self._handles is None:
            found: dict[BindRef, Any] = {}
            for ref in self.refs():
                try:
                    found[ref] = self.actor(ref)
                except ValueError:
                    raise BindDied(f"bind {ref.operator}/{ref.bind} has no process") from None
            self._handles = found
        return self._handles

    def binds_of(self, operator: str) -> list[BindRef]:
        """*operator*'s binds that can take a call now (``_placed``)."""
        return self.placed([ref for ref in self.handles() if ref.operator == operator])

    def placed(self, refs: list[BindRef]) -> list[BindRef]:
        """Those of *refs* that some live node can hold.

        A bind whose ``node_resource`` no live node offers (every egress node gone) waits to be
        placed, and every call to it would wait as long: the runner's feed hung on it. A timeout
        would not do, since a batch handed to a waiting actor is delivered once it is placed, and
        must not be sent elsewhere as well. Such a bind holds nothing (a process of it that ran
        held the resource on a node that is gone, and died with it), so it is left out of every
        call until a node offers the resource again; then it is called, and answers once placed.
        Not "has it answered yet": a new runner's pool has heard from no bind, and the binds an
        earlier runner fed hold its parts (skipped, a resumed job sent them twice)."""
        starved = self.starved()
        return [ref for ref in refs if ref not in starved]

    def starved(self) -> set[BindRef]:
        """The binds whose ``node_resource`` no live node offers, looked at once a second at most
        (``ray.cluster_resources`` is a call to Ray's control store; feed rounds come every few ms)."""
        now = time.monotonic()
        if now - self._starved_at > STARVED_RECHECK:
            self._starved = {
                BindRef(op.name, b.name)
                for op in self.settings.operators
                for b in op.binds
                if b.node_resource and not offered(b.node_resource)
            }
            self._starved_at = now
        return self._starved

    def calls(self) -> dict[BindRef, Any]:
        """The handles of the binds that can take a call now."""
        handles = self.handles()
        return {ref: handles[ref] for ref in self.placed(list(handles))}

    def ask(self, refs: list[BindRef], timeout: float) -> dict[BindRef, dict[str, Any] | Exception]:
        """What each of *refs* says of itself, all asked at once and none waited for past *timeout*:
        its description, or why not (``ValueError``: no actor of that name; ``GetTimeoutError``: no
        answer in time; ``ActorDiedError``; another ``RayError``: its node or network lost)."""
        out: dict[BindRef, dict[str, Any] | Exception] = {}
        asked = []
        for ref in refs:
            try:
                asked.append((ref, self.actor(ref).describe.remote()))
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

    def describe_all(self, refs: list[BindRef]) -> dict[BindRef, dict[str, Any]]:
        """What each of *refs* says of itself (those that do not answer left out)."""
        return {ref: d for ref, d in self.ask(refs, DESCRIBE_TIMEOUT).items() if isinstance(d, dict)}

    def describe(self, *, timeout: float = DESCRIBE_TIMEOUT) -> dict[str, list[dict[str, Any]]]:
        """Each operator's binds as they describe themselves, every bind asked at once and none
        waited for longer than *timeout* (a lost node's binds hung the API for 10 s, one after the
        other: issue 30). One that does not answer is ``unreachable`` (its node may be lost or cut
        off: it is made again elsewhere once Ray says so), one whose process is gone ``missing``."""
        starved = self.starved()
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
        for ref, said in self.ask([r for r in entries if r not in starved], timeout).items():
            if isinstance(said, dict):
                entries[ref].update(said)
            elif isinstance(said, ValueError | ray.exceptions.ActorDiedError):
                entries[ref].update(state=BindState.MISSING, last_error=type(said).__name__)
            elif isinstance(said, ray.exceptions.GetTimeoutError):
                entries[ref].update(state=BindState.UNREACHABLE, last_error=f"no answer in {timeout:g} s")
            else:
                entries[ref].update(state=BindState.UNREACHABLE, last_error=type(said).__name__)
        nodes = node_addresses()
        out: dict[str, list[dict[str, Any]]] = {}
        for ref, entry in entries.items():
            if entry.get("node"):
                entry["node_ip"] = nodes.get(entry["node"], "")
            out.setdefault(ref.operator, []).append(entry)
        return out

    def exists(self, ref: BindRef) -> bool:
        try:
            self.actor(ref)
        except ValueError:
            return False
        return True
