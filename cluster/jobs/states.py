"""A job's states and the moves between them: the one owner of both (the h11 ``_state.py`` shape).

The API moves a job to ``paused`` or ``cancelling``; the job's runner sees that within its poll
interval and moves it along the rest of the way::

    queued → ingesting → scheduled → sending → draining → done
                 │            │   ↕        │
                 │            └─ paused ───┤
                 └──────→ failed           └──→ cancelling → cancelled

Every change is an *event* looked up in :data:`MOVES`: the states it may happen in, and the state it
leads to (``resume`` to the one the job was paused from). ``JobStore.transition`` applies one
atomically in Redis; nothing else names a move's states.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    INGESTING = "ingesting"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    DRAINING = "draining"
    CANCELLING = "cancelling"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


class JobEvent(StrEnum):
    INGEST = "ingest"  # the runner starts reading the upload
    PREPARED = "prepared"  # the rows are prepared: wait for the send time or window
    NOTHING_TO_SEND = "nothing_to_send"  # a dry run, or no row to send
    WINDOW_OPENS = "window_opens"  # the send time came, the window is open
    WINDOW_CLOSES = "window_closes"  # outside the window: wait for the next
    ALL_HANDED = "all_handed"  # every part is with a bind or settled: wait for answers and receipts
    PARTS_LEFT = "parts_left"  # draining found parts no bind holds: send them
    SETTLED = "settled"  # every part answered, receipts in (or waited for long enough)
    PAUSE = "pause"  # the user pauses
    RESUME = "resume"  # the user resumes: back to where it was paused (sending: scheduled)
    CANCEL = "cancel"  # the user cancels
    CANCELLED = "cancelled"  # the runner has taken every queued part back
    FAIL = "fail"  # the job cannot go on (its error says why)


TERMINAL = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})
ACTIVE = tuple(s for s in JobState if s not in TERMINAL)
# From where the user may pause and cancel (the API's 409 names the job's state otherwise).
PAUSABLE = (JobState.QUEUED, JobState.INGESTING, JobState.SCHEDULED, JobState.SENDING)
CANCELLABLE = (*PAUSABLE, JobState.PAUSED)

# event: (the states it may happen in, the states it may lead to; the first is the default)
MOVES: dict[JobEvent, tuple[tuple[JobState, ...], tuple[JobState, ...]]] = {
    JobEvent.INGEST: ((JobState.QUEUED,), (JobState.INGESTING,)),
    # Resumed to queued or ingesting after the rows were prepared: on to scheduled.
    JobEvent.PREPARED: ((JobState.INGESTING, JobState.QUEUED), (JobState.SCHEDULED,)),
    # Paused while ingesting a job with nothing to send: it is done all the same.
    JobEvent.NOTHING_TO_SEND: ((JobState.INGESTING, JobState.PAUSED), (JobState.DONE,)),
    JobEvent.WINDOW_OPENS: ((JobState.SCHEDULED,), (JobState.SENDING,)),
    JobEvent.WINDOW_CLOSES: ((JobState.SENDING,), (JobState.SCHEDULED,)),
    JobEvent.ALL_HANDED: ((JobState.SENDING,), (JobState.DRAINING,)),
    JobEvent.PARTS_LEFT: ((JobState.DRAINING,), (JobState.SENDING,)),
    JobEvent.SETTLED: ((JobState.DRAINING,), (JobState.DONE,)),
    JobEvent.PAUSE: (PAUSABLE, (JobState.PAUSED,)),
    JobEvent.RESUME: ((JobState.PAUSED,), (JobState.SCHEDULED, JobState.QUEUED, JobState.INGESTING)),
    JobEvent.CANCEL: (CANCELLABLE, (JobState.CANCELLING,)),
    JobEvent.CANCELLED: ((JobState.CANCELLING,), (JobState.CANCELLED,)),
    JobEvent.FAIL: (ACTIVE, (JobState.FAILED,)),
}

RESUMES_TO = MOVES[JobEvent.RESUME][1]

# What a user may ask of a job in each state (the job view's ``actions``; the web manager's buttons).
USER_EVENTS = (JobEvent.PAUSE, JobEvent.RESUME, JobEvent.CANCEL)


class InvalidTransition(RuntimeError):
    """The job is not in a state the change is allowed from (the API answers 409)."""

    def __init__(self, message: str, state: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.state = state


def move(event: JobEvent, *, to: JobState | None = None) -> tuple[tuple[JobState, ...], JobState]:
    """The states *event* may happen in, and the one it leads to (*to*, if it is one it may)."""
    sources, targets = MOVES[event]
    if to is None:
        return sources, targets[0]
    if to not in targets:
        raise ValueError(f"{event.value} leads to {', '.join(targets)}, not {to.value}")
    return sources, to


def next_state(state: JobState, event: JobEvent, *, to: JobState | None = None) -> JobState | None:
    """The state *event* moves a job in *state* to, or None if it may not happen there."""
    sources, target = move(event, to=to)
    return target if state in sources else None


def resumed_state(paused_from: str | None) -> JobState:
    """Where ``resume`` takes a job paused from *paused_from*: where it was, except that a sending
    job goes to scheduled (its runner moves it on when the window allows)."""
    try:
        state = JobState(paused_from or JobState.SCHEDULED)
    except ValueError:
        return JobState.SCHEDULED
    return state if state in RESUMES_TO else JobState.SCHEDULED


def actions(state: JobState) -> list[str]:
    """What a user may do with a job in *state*: ``pause``, ``resume``, ``cancel``."""
    return [event.value for event in USER_EVENTS if state in MOVES[event][0]]
