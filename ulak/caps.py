"""Frequency caps: at most N messages to one recipient in a window (``1/24h``, ``4/7d``), per brand
and for commercial traffic overall, counted across jobs and nodes.

A message counts when its runner hands it to a bind (seconds before it is submitted, not when the
upload is planned), in one script per batch and Redis Cluster slot that, for each number, checks
every cap against what the number got lately and records the message if none is reached. So two
jobs of one brand sending to the same people at once cannot both get through: the script runs
whole, one number's history after another. A message is recorded once, as ``<job>:<row>``: handed
again (a runner resumed, a pause taken back) it passes as already counted, and a message taken
back unsent (a pause, the window closing, a cancel) is given back (``release``).

The history of a number is a sorted set (``keys.cap_history``) of the capped messages it got within
the longest window, scored by when: a few dozen bytes a recipient, gone a window after their last
message. A capped message is told when it may go: when the oldest message that fills a cap leaves
that cap's window. Which jobs are capped, and whether a capped message waits or is refused, is the
job's choice (``JobOptions.frequency_cap``); informational jobs are exempt by default and are not
counted.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from ulak import keys

_CAP = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

BRAND, COMMERCIAL = "b", "c"  # whose messages a cap counts: the job's brand's, or every commercial one


@dataclass(frozen=True, slots=True)
class Cap:
    """At most *count* messages in any *seconds*."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Cap:
        """``1/24h``, ``4/7d``, ``2/w``, ``3/90m``: a count, then the window (minutes, hours, days or
        weeks)."""
        m = _CAP.match(text)
        if m is None:
            raise ValueError(
                f"frequency cap {text!r} must look like 1/24h or 4/7d (messages / window in m, h, d or w)"
            )
        count, length = int(m.group(1)), int(m.group(2) or 1)
        if count < 1 or length < 1:
            raise ValueError(f"frequency cap {text!r}: the count and the window must be at least 1")
        seconds = length * _UNIT[m.group(3).lower()]
        if seconds > 366 * 86400:
            raise ValueError(f"frequency cap {text!r}: a window longer than a year is kept nowhere")
        return cls(count, seconds)

    def __str__(self) -> str:
        for unit in ("w", "d", "h"):
            if self.seconds % _UNIT[unit] == 0:
                return f"{self.count}/{self.seconds // _UNIT[unit]}{unit}"
        return f"{self.count}/{self.seconds // 60}m"


@dataclass(frozen=True, slots=True)
class Rule:
    """A cap and whose messages it counts (``BRAND``: the brand's; ``COMMERCIAL``: all commercial)."""

    counts: str
    cap: Cap


def rules_for(
    *,
    commercial_caps: Sequence[Cap],
    brand_caps: Mapping[str, Sequence[Cap]],
    brand: str | None,
    commercial: bool,
) -> tuple[Rule, ...]:
    """The caps a job of *brand* (commercial or not) is held to."""
    rules = [Rule(BRAND, cap) for cap in brand_caps.get(brand, ())] if brand else []
    if commercial:
        rules += [Rule(COMMERCIAL, cap) for cap in commercial_caps]
    return tuple(rules)


def shard_of(number: str) -> int:
    return zlib.crc32(number.encode()) % keys.CAP_SHARDS


# KEYS: the histories of one shard's numbers. ARGV: now (ms), keep (ms: the longest window), the
# member's prefix ("c|brand|" or "i|brand|"), the brand, the number of rules, each rule as (counts,
# count, window ms), then a member suffix (job:row) per key, then "1" to record or "0" to only look.
# Returns per key 0 (within every cap: recorded, or was already) or when it may go (ms).
_ADMIT = """
local now, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local prefix, brand, nrules = ARGV[3], ARGV[4], tonumber(ARGV[5])
local base = 5 + 3 * nrules
local record = ARGV[base + #KEYS + 1] == '1'
local out = {}
for i, key in ipairs(KEYS) do
  local member = prefix .. ARGV[base + i]
  local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local at, known, stale = 0, false, 0
  for j = 1, #entries, 2 do
    if tonumber(entries[j + 1]) <= now - keep then
      stale = stale + 1
    elseif entries[j] == member then
      known = true
    end
  end
  if not known and #entries > 0 then
    for r = 0, nrules - 1 do
      local counts, limit, window = ARGV[6 + 3 * r], tonumber(ARGV[7 + 3 * r]), tonumber(ARGV[8 + 3 * r])
      local times = {}
      for j = 1, #entries, 2 do
        local score = tonumber(entries[j + 1])
        if score > now - window and score > now - keep then
          local kind, b = string.match(entries[j], '^(%a)|([^|]*)|')
          if (counts == 'c' and kind == 'c') or (counts == 'b' and b == brand) then
            times[#times + 1] = score
          end
        end
      end
      if #times >= limit then
        local free = times[#times - limit + 1] + window
        if free > at then at = free end
      end
    end
  end
  out[i] = at
  if record then
    if stale > 0 then redis.call('ZREMRANGEBYSCORE', key, '-inf', now - keep) end
    if at == 0 and not known then
      redis.call('ZADD', key, now, member)
      redis.call('PEXPIRE', key, keep)
    end
  end
end
return out
"""

_RELEASE = """
for i, key in ipairs(KEYS) do redis.call('ZREM', key, ARGV[i]) end
return #KEYS
"""


class Gate:
    """One job's frequency caps (see the module docstring): ``admit`` a batch of its messages,
    ``release`` those taken back unsent. *keep* is the longest window of any cap configured
    (seconds): how long every number's history must be kept, whoever trims it."""

    def __init__(
        self,
        client: Any,
        rules: Sequence[Rule],
        *,
        job_id: str,
        brand: str | None,
        commercial: bool,
        keep: int,
    ) -> None:
        self.client = client
        self.rules = tuple(rules)
        self.job_id = job_id
        self.brand = brand or ""
        self.prefix = f"{'c' if commercial else 'i'}|{self.brand}|"
        # How long a history is kept: the longest window of every cap configured, not only of this
        # job's (a job held to 2/1h alone trimmed away what a 3/1d cap of another still counted).
        self.keep_ms = max(keep, *(r.cap.seconds for r in self.rules)) * 1000 if self.rules else 0
        self._admit = client.register_script(_ADMIT)
        self._release = client.register_script(_RELEASE)
        if self.rules:
            for script in (self._admit, self._release):
                script.sha = client.script_load(script.script)

    def admit(
        self, messages: Sequence[tuple[str, int]], now: float, *, record: bool = True
    ) -> dict[int, float]:
        """Check each (number, row) of *messages* against the caps at *now* (unix s), recording
        those within every cap (with *record*; without, only look, as the preview does). Returns
        index -> when it may go (unix s) for each capped one."""
        if not messages or not self.rules:
            return {}
        now_ms = int(now * 1000)
        head = [now_ms, self.keep_ms, self.prefix, self.brand, len(self.rules)]
        for rule in self.rules:
            head += [rule.counts, rule.cap.count, rule.cap.seconds * 1000]
        by_shard: dict[int, list[int]] = {}
        for i, (number, _) in enumerate(messages):
            by_shard.setdefault(shard_of(number), []).append(i)
        order = list(by_shard.items())
        calls = [
            (
                [keys.cap_history(shard, messages[i][0]) for i in idx],
                [*head, *(f"{self.job_id}:{messages[i][1]}" for i in idx), "1" if record else "0"],
            )
            for shard, idx in order
        ]
        capped: dict[int, float] = {}
        for (_, idx), answers in zip(order, self._run(self._admit, calls), strict=True):
            for i, at in zip(idx, answers, strict=True):
                if at:
                    capped[i] = int(at) / 1000
        return capped

    def release(self, messages: Sequence[tuple[str, int]]) -> None:
        """Give back the count of each (number, row) taken back unsent."""
        if not messages or not self.rules:
            return
        by_shard: dict[int, list[tuple[str, int]]] = {}
        for number, row in messages:
            by_shard.setdefault(shard_of(number), []).append((number, row))
        calls = [
            (
                [keys.cap_history(shard, n) for n, _ in items],
                [f"{self.prefix}{self.job_id}:{row}" for _, row in items],
            )
            for shard, items in by_shard.items()
        ]
        self._run(self._release, calls)

    def _run(self, script: Any, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Each (keys, args) call of *script*, in one pipeline (on a Redis Cluster, one per shard).
        A Redis that restarted has forgotten the script: it is loaded again and the calls made
        again, which changes nothing for a call that went through (a message is recorded once)."""
        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for call_keys, args in calls:
                pipe.evalsha(script.sha, len(call_keys), *call_keys, *args)
            try:
                return list(pipe.execute())
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                script.sha = self.client.script_load(script.script)
        raise AssertionError("unreachable")
