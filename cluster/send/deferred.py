"""The rows a job's runner holds back until a time of their own (a recipient's frequency cap:
``cluster.send.capping``; their local send window: ``cluster.send.localtime``), kept as row numbers:
a million of them cost the runner tens of MB, not their parts. Once the rest is handed, the runner
reads them again from the rows file when their time comes (``due``) and checks them again. A
runner that restarts forgets them and finds them again: they are unsent in the ledger, and the
checks say the same."""

from __future__ import annotations

CAP, WINDOW = "frequency cap", "local send window"  # why a row waits


class Deferred:
    """Row -> (may go at, first held at, why), times in unix seconds."""

    def __init__(self) -> None:
        self._rows: dict[int, tuple[float, float, str]] = {}
        self.held = 0  # rows held so far (a row held twice counts twice)

    def __len__(self) -> int:
        return len(self._rows)

    def first(self, row: int, now: float) -> float:
        """When *row* was first held (*now*, if it is not held)."""
        held = self._rows.get(row)
        return held[1] if held is not None else now

    def hold(self, row: int, at: float, *, now: float, why: str) -> None:
        self._rows[row] = (at, self.first(row, now), why)
        self.held += 1

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
