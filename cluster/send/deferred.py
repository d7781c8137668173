"""The rows a job's runner holds back until a time of their own (a recipient's frequency cap:
``cluster.send.capping``; their local send window: ``cluster.send.localtime``), kept as row numbers:
a million of them cost the runner tens of MB, not their parts. Once the rest is handed, the runner
reads them again from the rows file when their time comes (``due``) and checks them again. A
runner that restarts forgets them and finds them again: they are unsent in the ledger, and the
checks say the same."""

from __future__ import annotations

CAP, WINDOW = "frequency cap", "local send window"  # why a row waits


class Deferred:
    """Row -> (may go at, first held at, why), times in unix seconds. A row is held only within the
    job's *validity_minutes*, counted from when it was first held (``hold``)."""

    def __init__(self, *, validity_minutes: int | None = None) -> None:
        self._rows: dict[int, tuple[float, float, str]] = {}
        self.validity = validity_minutes * 60 if validity_minutes else None
        self.held = 0  # rows held so far (a row held twice counts twice)

    def __len__(self) -> int:
        return len(self._rows)

    def first(self, row: int, now: float) -> float:
        """When *row* was first held (*now*, if it is not held)."""
        held = self._rows.get(row)
        return held[1] if held is not None else now

    def hold(self, row: int, at: float, *, now: float, why: str) -> bool:
        """Hold *row* until *at*; False (and *row* no longer held) when *at* is past its validity:
        the caller ends it unsent."""
        first = self.first(row, now)
        if self.validity is not None and at > first + self.validity:
            self.forget(row)
            return False
        self._rows[row] = (at, first, why)
        self.held += 1
        return True

    def forget(self, row: int) -> None:
        self._rows.pop(row, None)

    def due(self, now: float) -> set[int]:
        """The rows whose time has come, no longer held (the runner reads them again)."""
        rows = {row for row, (at, _, _) in self._rows.items() if at <= now}
        for row in rows:
            del self._rows[row]
        return rows

    def next_due(self) -> float | None:
        return min((at for at, _, _ in self._rows.values()), default=None)

    def reasons(self) -> list[str]:
        """Why the rows held wait, each reason once, in a fixed order."""
        whys = {why for _, _, why in self._rows.values()}
        return [why for why in (WINDOW, CAP) if why in whys]
