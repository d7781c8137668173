"""Send-time optimisation: when each recipient is most likely to engage, learned from when they did.

**The model.** Every engagement Ulak sees from a number (a person's click on a tracked link, a
reply, a reported conversion) adds one to that number's count for the hour of the day it happened,
in the number's own time zone (``ulak.zones``). A number's 24 counts are 24 bytes in Redis; when one
would pass 255 all 24 are halved first, so old habits fade as new ones are counted. Numbers are
kept in ``BUCKETS`` hashes (``keys.sendtime_bucket``), a number's bucket by a hash of its digits: at
10 M numbers ~76 a hash, each a compact listpack entry (the number as an integer, its 24 bytes),
~40 bytes a number instead of a key of its own (~100). Each number's prefix (its first
``prefix_digits`` digits: country and area or operator) keeps the same counts summed
(``keys.SENDTIME_PRIORS``): what numbers like it do.

**The choice.** A number's score for an hour is its own counts plus *weight* pseudo-engagements
spread as its prefix's are, and the prefix's as the whole audience's (a Dirichlet-smoothed
estimate, shrunk twice): a number with a long history goes by it, one with a little by its
neighbours' as much as its own, one with none by its prefix's, a prefix with few by everyone's. The
planner (``cluster.send.sendtimes``) picks, among the hours a job may send in, the one with the
highest score; a random share of the recipients (the control group) gets a random one of them
instead, so that the job measures what the choice adds (:func:`lift`).

What is learned is when people engage, which partly follows when they were sent to: a job's random
control group keeps sending at every hour, and so keeps the history honest.

Sans-IO apart from the two Redis calls (:func:`fold` and :func:`histories`); numpy for the rest.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import redis

from ulak import keys
from ulak.variants import fractions, wilson

HOURS = 24
BUCKETS = 1 << 17  # hashes the numbers are kept in (about 76 numbers each at 10 M)
_BUCKET_SEED = 0x243F6A8885A308D3

# Add 1 at hour h (0-23) of each number in one bucket: ARGV[1] = "number hour number hour ...", one
# argument (an argument each costs the client more than the script costs Redis). A count about to
# pass 255 halves all 24 of that number first (old engagement fades).
_FOLD = """
local zero = string.rep('\\0', 24)
local n = 0
for number, hour in string.gmatch(ARGV[1], '(%d+) (%d+)') do
  local h = tonumber(hour) + 1
  local old = redis.call('HGET', KEYS[1], number) or zero
  local counts = {string.byte(old, 1, 24)}
  if counts[h] >= 255 then
    for k = 1, 24 do counts[k] = math.floor(counts[k] / 2) end
  end
  counts[h] = counts[h] + 1
  redis.call('HSET', KEYS[1], number, string.char(unpack(counts)))
  n = n + 1
end
return n
"""

# The 24 counts of each number (ARGV[1] = "number number ..."), concatenated; 24 zeros for a number
# never seen.
_READ = """
local zero = string.rep('\\0', 24)
local out = {}
for number in string.gmatch(ARGV[1], '%d+') do
  local counts = redis.call('HGET', KEYS[1], number)
  out[#out + 1] = (counts and #counts == 24) and counts or zero
end
return table.concat(out)
"""


def buckets_of(numbers: Sequence[str] | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Each number's bucket (E.164 digits, no '+')."""
    as_ints = np.asarray([int(n) for n in numbers] if not isinstance(numbers, np.ndarray) else numbers)
    return (fractions(as_ints.astype(np.uint64), _BUCKET_SEED) * BUCKETS).astype(np.int64)


def prefix_of(number: str, digits: int) -> str:
    return number[:digits]


def fold(client: Any, numbers: Sequence[str], hours: Sequence[int], *, prefix_digits: int) -> int:
    """Count one engagement at local hour ``hours[i]`` for each ``numbers[i]`` (and its prefix);
    one script call a bucket touched, all pipelined. Returns how many were counted."""
    if not numbers:
        return 0
    by_bucket: dict[int, list[str]] = {}
    for bucket, number, hour in zip(buckets_of(numbers).tolist(), numbers, hours, strict=True):
        by_bucket.setdefault(bucket, []).append(f"{number} {int(hour)}")
    priors = Counter(f"{prefix_of(n, prefix_digits)}:{int(h)}" for n, h in zip(numbers, hours, strict=True))
    _run(client, _FOLD, [(keys.sendtime_bucket(b), " ".join(pairs)) for b, pairs in by_bucket.items()])
    pipe = client.pipeline(transaction=False)
    for field, n in priors.items():
        pipe.hincrby(keys.SENDTIME_PRIORS, field, n)
    pipe.execute()
    return len(numbers)


def histories(client: Any, numbers: Sequence[str]) -> np.ndarray[Any, Any]:
    """Each number's 24 hourly counts (zeros for a number never seen): an (n, 24) uint8 array.
    One script call a bucket touched, pipelined."""
    out = np.zeros((len(numbers), HOURS), dtype=np.uint8)
    if not numbers:
        return out
    by_bucket: dict[int, list[int]] = {}
    for i, bucket in enumerate(buckets_of(numbers).tolist()):
        by_bucket.setdefault(bucket, []).append(i)
    calls = [(keys.sendtime_bucket(b), " ".join(numbers[i] for i in idx)) for b, idx in by_bucket.items()]
    for idx, counts in zip(by_bucket.values(), _run(client, _READ, calls), strict=True):
        out[idx] = np.frombuffer(counts, dtype=np.uint8).reshape(len(idx), HOURS)
    return out


def _run(client: Any, script: str, calls: list[tuple[str, str]]) -> list[Any]:
    """*script* once for each (key, argument), pipelined; loaded again if Redis restarted."""
    sha = client.script_load(script)
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for key, arg in calls:
            pipe.evalsha(sha, 1, key, arg)
        try:
            return list(pipe.execute())
        except redis.exceptions.NoScriptError:
            if attempt == 2:
                raise
            sha = client.script_load(script)
    raise AssertionError("unreachable")


class Priors:
    """Every prefix's hourly counts, and the whole audience's (their sum)."""

    def __init__(self, by_prefix: Mapping[str, np.ndarray[Any, Any]], *, digits: int) -> None:
        self.by_prefix = dict(by_prefix)
        self.digits = digits
        self.audience: np.ndarray[Any, Any] = np.zeros(HOURS, dtype=np.float64)
        for counts in self.by_prefix.values():
            self.audience += counts

    @classmethod
    def read(cls, client: Any, *, digits: int) -> Priors:
        by_prefix: dict[str, np.ndarray[Any, Any]] = {}
        cursor = 0
        while True:
            cursor, chunk = client.hscan(keys.SENDTIME_PRIORS, cursor, count=10_000)
            for field, count in chunk.items():
                prefix, _, hour = field.decode().rpartition(":")
                if len(prefix) != digits:  # counted under another prefix_digits: not comparable
                    continue
                counts = by_prefix.setdefault(prefix, np.zeros(HOURS, dtype=np.float64))
                counts[int(hour)] += int(count)
            if cursor == 0:
                return cls(by_prefix, digits=digits)

    def of(self, numbers: Sequence[str], *, weight: float) -> np.ndarray[Any, Any]:
        """Per number, its prefix's counts shrunk toward the audience's, as shares of one: (n, 24)."""
        audience = _shares(self.audience)
        rows: dict[str, np.ndarray[Any, Any]] = {}
        out = np.empty((len(numbers), HOURS), dtype=np.float64)
        for i, number in enumerate(numbers):
            prefix = prefix_of(number, self.digits)
            row = rows.get(prefix)
            if row is None:
                counts = self.by_prefix.get(prefix)
                row = audience if counts is None else _shares(counts + weight * audience)
                rows[prefix] = row
            out[i] = row
        return out


def _shares(counts: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    total = float(counts.sum())
    return counts / total if total > 0 else np.full(HOURS, 1.0 / HOURS)


def scores(
    history: np.ndarray[Any, Any], prior: np.ndarray[Any, Any], *, weight: float
) -> np.ndarray[Any, Any]:
    """Each number's estimated share of its engagement at each hour: (own counts + *weight* ×
    prior shares) / (own total + *weight*); (n, 24)."""
    own = history.astype(np.float64)
    out: np.ndarray[Any, Any] = (own + weight * prior) / (own.sum(axis=1, keepdims=True) + weight)
    return out


def lift(
    successes: tuple[int, int], trials: tuple[int, int], *, z: float = 1.959964
) -> dict[str, float | None] | None:
    """Optimised (first) against control (second): both rates, their difference and its 95 %
    interval (Newcombe's hybrid score interval, from each rate's Wilson interval: sound at small
    counts and rates near 0, where the Wald one is not), and the relative lift. None without data."""
    (s1, s0), (n1, n0) = successes, trials
    if not n1 or not n0:
        return None
    p1, p0 = s1 / n1, s0 / n0
    l1, u1 = wilson(s1, n1, z)
    l0, u0 = wilson(s0, n0, z)
    diff = p1 - p0
    low = diff - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return {
        "optimized": round(p1, 6),
        "control": round(p0, 6),
        "difference": round(diff, 6),
        "low": round(low, 6),
        "high": round(high, 6),
        "relative": round(diff / p0, 4) if p0 else None,
    }
