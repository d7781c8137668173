"""A bind's states and the moves between them: the one owner of both (``BindClient`` applies them;
the pool, ``/metrics``, the health check and ``ulak status`` read them from here).

A bind connects, binds, sends (pausing as ``throttled`` while the SMSC asks it to slow down) and, when
its connection ends, reconnects. ``refused`` (wrong credentials) and ``failed`` (a bug in the send
loop) stay shown while it retries, until it is bound again. Three more states are the pool's, for a
bind no process answers for: ``missing`` (no actor), ``unplaced`` (no node may hold it) and
``unreachable`` (its node does not answer).
"""

from __future__ import annotations

from enum import StrEnum


class BindState(StrEnum):
    CONNECTING = "connecting"
    BOUND = "bound"
    THROTTLED = "throttled"
    RECONNECTING = "reconnecting"
    # The SMSC refused the bind's credentials (ESME_RINVPASWD, ESME_RINVSYSID): a configuration error
    # that retrying will not fix. The bind tries again every REFUSED_RETRY seconds, in case the
    # operator's side is what changes, and says so in its last_error.
    REFUSED = "refused"
    # The send loop hit an error it does not know (a bug): logged with its traceback, shown here with
    # the error until the loop, started again after a backoff, is bound again.
    FAILED = "failed"
    CLOSED = "closed"
    # The pool's, for a bind no process answers for (``cluster.send.pool.BindPool.describe``).
    MISSING = "missing"
    UNPLACED = "unplaced"
    UNREACHABLE = "unreachable"


class BindEvent(StrEnum):
    CONNECT = "connect"  # a connection is being made (again)
    BOUND = "bound"  # the SMSC accepted the bind
    SLOW_DOWN = "slow_down"  # the SMSC answered 0x58 or 0x14: pause
    GO_ON = "go_on"  # the pause is over
    REFUSED = "refused"  # the SMSC refused the credentials
    CRASHED = "crashed"  # the send loop raised an error it does not know
    STOPPED = "stopped"  # the bind was stopped


# Parts go out (throttled: after a pause of a second or less).
UP = frozenset({BindState.BOUND, BindState.THROTTLED})
# Nothing goes out until someone acts or the cause goes away (its operator's rows wait).
DOWN = frozenset(
    {BindState.FAILED, BindState.REFUSED, BindState.MISSING, BindState.UNPLACED, BindState.UNREACHABLE}
)
_LIVE = (BindState.CONNECTING, BindState.RECONNECTING, BindState.BOUND, BindState.THROTTLED)

# event: (the states it moves a bind from, the states it may lead to; the first is the default). In
# any other state the event leaves the bind where it is: a refused bind that reconnects stays refused.
MOVES: dict[BindEvent, tuple[tuple[BindState, ...], tuple[BindState, ...]]] = {
    BindEvent.CONNECT: (_LIVE, (BindState.RECONNECTING, BindState.CONNECTING)),
    BindEvent.BOUND: (
        (*_LIVE, BindState.REFUSED, BindState.FAILED),
        (BindState.BOUND,),
    ),
    BindEvent.SLOW_DOWN: ((BindState.BOUND, BindState.THROTTLED), (BindState.THROTTLED,)),
    BindEvent.GO_ON: ((BindState.BOUND, BindState.THROTTLED), (BindState.BOUND,)),
    BindEvent.REFUSED: ((*_LIVE, BindState.REFUSED, BindState.FAILED), (BindState.REFUSED,)),
    BindEvent.CRASHED: ((*_LIVE, BindState.REFUSED, BindState.FAILED), (BindState.FAILED,)),
    BindEvent.STOPPED: ((*_LIVE, BindState.REFUSED, BindState.FAILED), (BindState.CLOSED,)),
}


def next_state(state: BindState, event: BindEvent, *, to: BindState | None = None) -> BindState:
    """Where *event* takes a bind in *state* (to *to*, where it may lead to several)."""
    sources, targets = MOVES[event]
    if to is not None and to not in targets:
        raise ValueError(f"{event.value} leads to {', '.join(targets)}, not {to.value}")
    return (to or targets[0]) if state in sources else state
