"""A job's states and the moves between them (the one owner of both)."""

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
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


ACTIVE = tuple(s for s in JobState if not s.terminal)
# From where pause and cancel are allowed (the API's 409 names the job's state otherwise).
PAUSABLE = (JobState.QUEUED, JobState.INGESTING, JobState.SCHEDULED, JobState.SENDING)
CANCELLABLE = (*PAUSABLE, JobState.PAUSED)


class InvalidTransition(RuntimeError):
    """The job is not in a state the change is allowed from (the API answers 409)."""

    def __init__(self, message: str, state: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.state = state
