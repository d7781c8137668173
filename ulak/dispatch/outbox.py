"""A bind's ledger events not written yet, in the order they happened: what its flush writes.

Two rules keep the ledger's work small, and both live here:

* **A send answered before it is written goes as its answer alone** (``ledger.coalesce``'s rule):
  the ack or failure implies the send, and a send costs the ledger script as much as its ack. Most
  of a flush's sends are answered by the time it runs. Each unwritten send's place is kept by its
  part's ``id()``, so the answer can blank it (None) where it stands; a send already taken for a
  write stays, and its answer simply follows it.
* **Receipts wait one flush tick.** An SMSC may send a message's receipt on another of its binds;
  written before the bind that has the message's ack writes it, the receipt must be held and
  matched later, which costs the ledger about six more Redis calls. Every bind writes its acks at
  every tick, so a tick later the ack is there. A flush that is not a tick (a withdraw, a drain)
  writes every receipt at once.

A plain class: no I/O, no clock. ``BindClient.flush`` writes what ``take`` gives and ``put_back``
returns what a failed write did not take.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ulak.dispatch.ledger import Event, PartSent, ReceiptSeen, RowStopped


class Outbox:
    """See the module docstring."""

    __slots__ = ("_aged", "_receipts", "events", "sent_at")

    def __init__(self) -> None:
        # In order; a send answered before it was taken is None where it stood.
        self.events: list[Event | None] = []
        # Where each send not taken yet stands in ``events``, by its part's id() (the send path
        # writes both itself: it is the hottest loop of a bind).
        self.sent_at: dict[int, int] = {}
        self._receipts: list[Event] = []  # since the last tick
        self._aged: list[Event] = []  # from the tick before: written at this one

    def sent(self, item: object, event: PartSent) -> None:
        self.sent_at[id(item)] = len(self.events)
        self.events.append(event)

    def answered(self, item: object) -> bool:
        """*item*'s send, if not taken yet, goes (the answer about to follow implies it): whether
        it did."""
        at = self.sent_at.pop(id(item), None)
        if at is None:
            return False
        self.events[at] = None
        return True

    def add(self, event: Event) -> None:
        self.events.append(event)

    def extend(self, events: Iterable[Event]) -> None:
        self.events.extend(events)

    def receipts(self, receipts: Iterable[ReceiptSeen]) -> None:
        self._receipts.extend(receipts)

    def age_receipts(self, *, tick: bool) -> None:
        """Move the receipts due now among the events: at a *tick*, those of the tick before (this
        tick's wait for the next); otherwise all of them."""
        due = self._aged
        if tick:
            self._aged, self._receipts = self._receipts, []
        else:
            due += self._receipts
            self._aged, self._receipts = [], []
        self.events += due

    def take(self) -> list[Event]:
        """Every event due, in order; the sends among them can no longer be coalesced."""
        taken = [e for e in self.events if e is not None]
        self.events = []
        self.sent_at.clear()
        return taken

    def put_back(self, events: Sequence[Event]) -> None:
        """Events a failed write did not take: first again, before anything since."""
        self.events[:0] = events
        self.sent_at.clear()  # their places moved: those sends simply stay

    def unsettled(self) -> list[Event]:
        """The events about parts sent (not receipts, not rows stopped unsent) still to write: what
        a send record must keep."""
        return [e for e in self.events if e is not None and type(e) not in (ReceiptSeen, RowStopped)]

    @property
    def waiting_receipts(self) -> int:
        return len(self._receipts) + len(self._aged)

    def __len__(self) -> int:
        return len(self.events)
