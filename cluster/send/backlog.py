"""How much each bind holds for the runners, as it last said, and when to ask a full one again.

A bind holding more than ``max_backlog`` parts is not fed; a runner asks it how far it got instead
(``BindPool.feed``). It was asked at every round of the runner's loop (every ~20 ms while every bind
is full), each question an actor call costing CPU in the runner's process and in the bind's. A full
bind is now asked again when, at the pace it went between its last two answers, it will be back at
the limit: its queue does not run dry (it is still at the limit when asked), and it is asked a few
times a second at most instead of fifty (a 1M-row product bench: 150 questions instead of 452,
beside 2,048 batches).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

# Seconds between two questions to a full bind: at least (the runner's own loop), at most (a bind
# stuck on a dead SMSC is still asked four times a second, so it is fed again soon after it moves),
# and before its pace is known.
MIN_WAIT = 0.02
MAX_WAIT = 0.25
FIRST_WAIT = 0.05


@dataclass
class _Said:
    queued: int  # what it held
    at: float  # when it said so (the clock's time)
    asked: bool  # in answer to the question (no batch came with it)
    pace: float | None  # parts a second it sent between its last two answers to the question


class Backlogs:
    """Each bind's last answer (see the module docstring). *clock*: monotonic seconds."""

    def __init__(self, max_backlog: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_backlog = max_backlog
        self._clock = clock
        self._said: dict[Hashable, _Said] = {}

    def full(self, bind: Hashable) -> bool:
        """Whether *bind* holds more than it should be given (not fed until it says otherwise)."""
        said = self._said.get(bind)
        return said is not None and said.queued > self.max_backlog

    def due(self, bind: Hashable) -> bool:
        """Whether to ask a full *bind* how far it got now."""
        said = self._said.get(bind)
        if said is None:
            return True
        if said.pace is None:
            wait = FIRST_WAIT
        elif said.pace <= 0:
            wait = MAX_WAIT  # it sent nothing since it was last asked
        else:
            wait = min(MAX_WAIT, max(MIN_WAIT, (said.queued - self.max_backlog) / said.pace))
        return self._clock() - said.at >= wait

    def fed(self, bind: Hashable, queued: int) -> None:
        """*bind* took a batch and now holds *queued*."""
        previous = self._said.get(bind)
        pace = previous.pace if previous is not None else None
        self._said[bind] = _Said(queued, self._clock(), asked=False, pace=pace)

    def answered(self, bind: Hashable, queued: int) -> None:
        """*bind*, asked, said it holds *queued*; nothing was given it since it last said."""
        now = self._clock()
        previous = self._said.get(bind)
        pace = None if previous is None else previous.pace
        if previous is not None and previous.asked and now > previous.at:
            pace = max(0.0, previous.queued - queued) / (now - previous.at)
        self._said[bind] = _Said(queued, now, asked=True, pace=pace)

    def forget(self, bind: Hashable) -> None:
        """*bind* was made again: what it said was the old process's."""
        self._said.pop(bind, None)
