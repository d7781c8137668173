"""Refusals while jobs run: an opt-out or a consent withdrawn stops every later message to that number.

Ingest checks every row against the opt-out lists and the consent records once, when the upload is
read. A job may then send for hours (a low cap, a pause, a send window, an A/B test's rest), and a
recipient who answers RET in the meantime must get nothing more (Turkish law 6563, art. 8; İYS: RET
beats ONAY). So each refusal, as it is recorded (``ulak.optouts.OptOuts.add``, a RET that takes in
``ulak.consent.Consents.record``), is also appended to one stream, ``keys.REFUSALS``, which two
kinds of readers follow:

* a job's runner, which checks each batch of rows it reads against the lists themselves (one round
  trip a batch: ``RowCheck``), and each message it hands to a bind against every refusal the
  stream named since it started (``cluster.send.stops``);
* every bind, which drops the queued messages (not started: a message whose first part went is
  finished, its parts belong together) of the numbers the stream names, and checks each batch it
  is given against what the stream named lately (``Recent``: a set lookup a part, no Redis call).

A row stopped so ends with the reason and the time in its ledger (``ledger.RowStopped``), and the
job counts it (``stopped_opted_out``, ``stopped_no_consent``). Which refusals stop a job's rows is
its ``Scope``: the global opt-out list always, its brand's list, and, for a commercial job, consent
withdrawn on the list it is checked against (its brand's, else the global one).

The lists decide: a reader keeps of each entry only the numbers still refused when it reads it (a
number that opted in again since is sent to), and opt-ins and consents (ONAY) go to the stream
too, so a bind forgets a refusal it remembers as soon as it is undone. What is not covered: a
refusal recorded on its list but not in the stream (the process died between the two writes) stops
only the rows read after it, not those already handed to a bind.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

from ulak import keys, redisclient

OPTED_OUT, NO_CONSENT = "opted_out", "no_consent"
KINDS = (OPTED_OUT, NO_CONSENT)  # refusals: they stop rows
# ...and their undoing, in the same stream: an opt-in, consent ONAY again. A bind forgets the
# refusal it remembers (``Recent``) when it reads one, so who opted back in is sent to at once.
OPTED_IN, CONSENTED = "opted_in", "consented"
CLEARS = {OPTED_IN: OPTED_OUT, CONSENTED: NO_CONSENT}
STREAM_MAX = 100_000  # entries the stream keeps (approximately), each up to CHUNK numbers
CHUNK = 5000
LOOKBACK = 300.0  # seconds of the stream a new reader reads first (see ``Follower``)
RECENT = 120.0  # seconds a bind remembers a refusal, for the batches it is given after it


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose refusals stop a job's rows (see the module docstring)."""

    brand: str | None = None
    commercial: bool = False
    optouts: bool = True  # False: opt-out confirmations, sent because the number opted out

    def stops(self, refusal: Refusal) -> bool:
        return self.stops_kind(refusal.kind, refusal.brand)

    def stops_kind(self, kind: str, brand: str | None) -> bool:
        """Whether refusals of *kind* on *brand*'s list (None: the global one) stop these rows."""
        if kind not in KINDS:
            return False  # an opt-in or a consent: it stops nothing
        if kind == OPTED_OUT:
            return self.optouts and (brand is None or brand == self.brand)
        return self.commercial and brand == self.brand


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: str  # OPTED_OUT or NO_CONSENT; OPTED_IN or CONSENTED: one undone
    brand: str | None  # the list it is on (None: the global one)
    numbers: tuple[str, ...]  # E.164 without '+'
    at: float  # unix time it was recorded

    def fields(self) -> dict[str, str]:
        return {"k": self.kind, "b": self.brand or "", "n": ",".join(self.numbers), "t": f"{self.at:.3f}"}

    @classmethod
    def read(cls, fields: dict[bytes, bytes]) -> Refusal:
        kind = fields[b"k"].decode()
        if kind not in KINDS and kind not in CLEARS:
            raise ValueError(f"a refusal of unknown kind {kind!r} in {keys.REFUSALS}")
        numbers = fields[b"n"].decode()
        return cls(
            kind,
            fields[b"b"].decode() or None,
            tuple(numbers.split(",")) if numbers else (),
            float(fields[b"t"]),
        )


def publish(pipe: Any, *, kind: str, brand: str | None, numbers: Sequence[str], at: float) -> None:
    """Queue on *pipe* (a Redis pipeline, or a client) the stream entries of *numbers* refused."""
    assert kind in KINDS or kind in CLEARS, kind
    for start in range(0, len(numbers), CHUNK):
        chunk = tuple(numbers[start : start + CHUNK])
        pipe.xadd(
            keys.REFUSALS, Refusal(kind, brand, chunk, at).fields(), maxlen=STREAM_MAX, approximate=True
        )


def since_id(seconds: float, *, now: float | None = None) -> str:
    """The stream id *seconds* ago (an XREAD after it reads what was added since)."""
    at = (time.time() if now is None else now) - seconds
    return f"{max(0, int(at * 1000))}-0"


def parse(entries: Any) -> tuple[list[Refusal], str | None]:
    """An XREAD answer as refusals, and the id of the last entry (None: nothing new)."""
    out: list[Refusal] = []
    last: str | None = None
    for _stream, items in entries or ():
        for entry_id, fields in items:
            last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            out.append(Refusal.read(fields))
    return out, last


class Follower:
    """A reader's place in the stream. It starts ``LOOKBACK`` seconds back, so that a reader that
    starts late (a bind made again, a runner restarted) still sees the refusals that came while the
    rows it is given were on their way. ``read`` (sync client) and ``aread`` (asyncio) return what
    came since the last call, at most *count* entries at a time, each cut to the numbers whose
    refusal still stands on its list (a number may have opted in again since: the list decides),
    in the same round trip's pipeline."""

    def __init__(self, *, lookback: float = LOOKBACK, count: int = 1000) -> None:
        self.last = since_id(lookback)
        self.count = count

    def read(self, client: Any) -> list[Refusal]:
        refusals, last = parse(client.xread({keys.REFUSALS: self.last}, count=self.count))
        if not refusals:
            return []
        pipe = client.pipeline(transaction=False)
        _ask(pipe, refusals)
        self.last = last or self.last
        return _standing(refusals, pipe.execute())

    async def aread(self, client: Any) -> list[Refusal]:
        refusals, last = parse(await client.xread({keys.REFUSALS: self.last}, count=self.count))
        if not refusals:
            return []
        pipe = client.pipeline(transaction=False)
        _ask(pipe, refusals)
        self.last = last or self.last
        return _standing(refusals, await pipe.execute())


def _ask(pipe: Any, refusals: list[Refusal]) -> None:
    for r in refusals:
        on_list = r.kind in (OPTED_OUT, OPTED_IN)
        key = keys.optout_set(r.brand) if on_list else keys.consent_granted(r.brand)
        pipe.smismember(key, list(r.numbers) or [""])


def _standing(refusals: list[Refusal], answers: list[Any]) -> list[Refusal]:
    """*refusals* cut to the numbers still refused: on the opt-out list, or without consent."""
    out = []
    for r, found in zip(refusals, answers, strict=True):
        # An opt-out stands while listed, a RET while not granted; their undoing the other way round.
        listed = r.kind in (OPTED_OUT, CONSENTED)
        numbers = tuple(n for n, f in zip(r.numbers, found, strict=False) if bool(f) == listed)
        if numbers:
            out.append(Refusal(r.kind, r.brand, numbers, r.at))
    return out


class Recent:
    """The numbers refused in the last ``keep`` seconds, by kind and list: what a bind checks the
    batches it is given against (plain Python, an injected clock)."""

    def __init__(self, *, keep: float = RECENT, clock: Any = time.monotonic) -> None:
        self.keep = keep
        self.clock = clock
        self._seen: list[tuple[float, Refusal]] = []
        self._numbers: dict[tuple[str, str | None], set[str]] = {}

    def __bool__(self) -> bool:
        return bool(self._seen)

    def add(self, refusals: Iterable[Refusal]) -> None:
        """Remember *refusals*, in order; an opt-in or consent among them forgets what it undoes."""
        now = self.clock()
        for r in refusals:
            undone = CLEARS.get(r.kind)
            if undone is None:
                self._seen.append((now, r))
                self._numbers.setdefault((r.kind, r.brand), set()).update(r.numbers)
                continue
            cleared = set(r.numbers)
            self._seen = [
                (at, Refusal(s.kind, s.brand, tuple(n for n in s.numbers if n not in cleared), s.at))
                if (s.kind, s.brand) == (undone, r.brand)
                else (at, s)
                for at, s in self._seen
            ]
            self._numbers.get((undone, r.brand), set()).difference_update(cleared)
        self._expire(now)

    def _expire(self, now: float) -> None:
        if not self._seen or now - self._seen[0][0] <= self.keep:
            return
        self._seen = [(at, r) for at, r in self._seen if now - at <= self.keep]
        self._numbers = {}
        for _, r in self._seen:
            self._numbers.setdefault((r.kind, r.brand), set()).update(r.numbers)

    def matcher(self, scope: Scope) -> Matcher:
        """What stops *scope*'s rows among the refusals remembered now."""
        self._expire(self.clock())
        return Matcher.scoped(((kind, brand, n) for (kind, brand), n in self._numbers.items()), scope)


class Matcher:
    """Refused numbers of one scope: ``kind_of(number)`` is the reason a row to it stops, or None."""

    def __init__(self, sets: dict[str, list[set[str]]]) -> None:
        self._sets = [(kind, s) for kind in KINDS for s in sets.get(kind, ())]

    @classmethod
    def of(cls, refusals: Iterable[Refusal], scope: Scope) -> Matcher:
        return cls.scoped(((r.kind, r.brand, set(r.numbers)) for r in refusals), scope)

    @classmethod
    def scoped(cls, lists: Iterable[tuple[str, str | None, set[str]]], scope: Scope) -> Matcher:
        """Of (kind, brand, numbers) sets, those that stop *scope*'s rows."""
        sets: dict[str, list[set[str]]] = {kind: [] for kind in KINDS}
        for kind, brand, numbers in lists:
            if scope.stops_kind(kind, brand):
                sets[kind].append(numbers)
        return cls(sets)

    def __bool__(self) -> bool:
        return any(numbers for _, numbers in self._sets)  # a list emptied by opt-ins stops nothing

    def kind_of(self, number: str) -> str | None:
        for kind, numbers in self._sets:  # opt-outs first: the reason a person gave
            if number in numbers:
                return kind
        return None


class RowCheck:
    """The lists themselves, asked for a batch of numbers in one round trip (a sync client): which
    of them a job of *scope* may no longer send to, and why (opt-outs first)."""

    def __init__(self, client: Any, scope: Scope) -> None:
        self.client = client
        self.scope = scope
        brands = [None, scope.brand] if scope.brand else [None]
        self.lists = [keys.optout_set(b) for b in brands] if scope.optouts else []

    def refused(self, numbers: Sequence[str]) -> dict[int, str]:
        """Index in *numbers* -> reason, for each number refused now."""
        if not numbers or not (self.lists or self.scope.commercial):
            return {}
        commands = [("SMISMEMBER", key, *numbers) for key in self.lists]
        if self.scope.commercial:
            commands.append(("SMISMEMBER", keys.consent_granted(self.scope.brand), *numbers))
        answers = redisclient.read_many(self.client, commands)  # packed in C: a batch's numbers
        # Selected in C (itertools.compress): almost every answer is "no", and a Python loop over
        # every number of every batch was a second of the runner's CPU a million rows.
        out: dict[int, str] = {}
        if self.scope.commercial:
            out.update(
                dict.fromkeys(compress(range(len(numbers)), map(operator.not_, answers[-1])), NO_CONSENT)
            )
        for found in answers[: len(self.lists)]:
            out.update(dict.fromkeys(compress(range(len(numbers)), found), OPTED_OUT))
        return out
