"""Tracked links: a short code per recipient, what it points to, and the clicks on it.

A job whose template says ``{link}`` gets, per row, a code of ``links.code_length`` random base62
characters (``os.urandom``: no code says anything about another) and the text carries
``<links.base_url>/<code>``, so part planning counts the real text. Codes are reserved in Redis while
the rows are prepared (``SET NX`` with the links' expiry: a code some other job holds is drawn
again), each naming its job and row. The redirect service (``api.redirect``) resolves a code to the
job's target and records the click:

* a ``HEAD``, an empty user agent, or one of a link previewer or scanner (``is_bot``) is a bot
  click, counted apart and never as a click;
* otherwise the click counts in the job's total, and in its unique clicks the first time that row's
  link is clicked (the row's first click time is kept);
* every click, bot or not, is an entry in the job's click stream (time, row, bot, user agent, and a
  salted hash of the client address, never the address).

An unknown, malformed or expired code, or one whose job is gone, is a plain 404.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ulak import keys
from ulak.records import Ack, LinkOwner, Receipt

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_UNBIASED = 248  # 4 × 62: a byte below it, taken mod 62, is uniform over the alphabet
CODE = re.compile(rb"[0-9A-Za-z]{8,32}")
LINK_FIELD = "link"  # the template placeholder, {link}

# Link previewers, unfurlers and security scanners that fetch a link before (or instead of) a person.
BOT_AGENTS = (
    "bot",
    "crawler",
    "spider",
    "preview",
    "scanner",
    "facebookexternalhit",
    "whatsapp",
    "telegram",
    "slack",
    "discord",
    "skypeuripreview",
    "linkedin",
    "embedly",
    "vkshare",
    "pinterest",
    "outlook",
    "google-safety",
    "proofpoint",
    "mimecast",
    "barracuda",
    "curl/",
    "wget/",
    "python-requests",
    "go-http-client",
)


def new_codes(n: int, length: int, *, randbytes: Callable[[int], bytes] = os.urandom) -> pa.Array:
    """*n* random codes of *length* base62 characters, as one Arrow string array (no per-row Python)."""
    import numpy as np  # noqa: PLC0415 - numpy and pyarrow only where codes are made, not in every process
    import pyarrow as pa  # noqa: PLC0415

    need = n * length
    drawn = np.empty(0, dtype=np.uint8)
    while drawn.size < need:  # about 3 % of bytes are dropped to keep every character equally likely
        more = np.frombuffer(randbytes(int((need - drawn.size) * 1.04) + 16), dtype=np.uint8)
        drawn = np.concatenate([drawn, more[more < _UNBIASED]])
    chars = _alphabet()[drawn[:need] % 62]
    offsets = np.arange(0, need + 1, length, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


@cache
def _alphabet() -> np.ndarray[Any, Any]:
    import numpy as np  # noqa: PLC0415

    return np.frombuffer(ALPHABET, dtype=np.uint8)


def target_url(url: str, utm: dict[str, str] | None) -> str:
    """*url* with the UTM (or any) parameters of *utm* added to its query; ones it has are kept."""
    if not utm:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    have = {k for k, _ in query}
    query += [(k, v) for k, v in utm.items() if k not in have]
    return urlunsplit(parts._replace(query=urlencode(query)))


def is_bot(method: str, user_agent: str) -> bool:
    """A fetch that is not a person following the link: ``HEAD``, no user agent, or a known one."""
    if method == "HEAD" or not user_agent.strip():
        return True
    return _BOT_AGENTS.search(user_agent.lower()) is not None


_BOT_AGENTS = re.compile("|".join(re.escape(name) for name in BOT_AGENTS))  # one scan, not 24


def address_hash(address: str, salt: bytes) -> str:
    """A salted hash of a client address: the same address gives the same hash, and no address can
    be read back from it without the salt (which lives in Redis, ``keys.LINK_SALT``)."""
    return hashlib.blake2b(address.encode(), key=salt[:64], digest_size=12).hexdigest()


def reserve(
    client: Any, *, job_id: str, rows: pa.Array, ledgers: pa.Array | None = None, length: int, ttl: float
) -> pa.Array:
    """A code per row of *rows* (int64), each reserved for *job_id* for *ttl* seconds (``SET NX``: a
    code already held, by any job, is drawn again), naming the row and the ledger its parts are in
    (*ledgers*, per row; null for a row no operator takes). One pipeline a round; a second round is
    rare (at 8 characters, one code in 10⁸ meets another while a billion are held)."""
    n = len(rows)
    codes = new_codes(n, length).to_pylist()
    where = ledgers.to_pylist() if ledgers is not None else [None] * n
    row_values = [
        LinkOwner(job_id, r, ledger or "").write() for r, ledger in zip(rows.to_pylist(), where, strict=True)
    ]
    todo = list(range(n))
    ttl_ms = max(1, int(ttl * 1000))
    while todo:
        pipe = client.pipeline(transaction=False)
        for i in todo:
            pipe.set(keys.link(codes[i]), row_values[i], nx=True, px=ttl_ms)
        answers = pipe.execute()
        todo = [i for i, ok in zip(todo, answers, strict=True) if not ok]
        if todo:
            fresh = new_codes(len(todo), length).to_pylist()
            for i, code in zip(todo, fresh, strict=True):
                codes[i] = code
    import pyarrow as pa  # noqa: PLC0415

    return pa.array(codes, pa.string())


def sent_at(part_fields: list[bytes | None]) -> float | None:
    """When a row's first part reached the phone, or at least the SMSC: its receipt's time, else its
    ack's (unix s), from the part's ``m`` and ``r`` fields (``keys.job_bucket``); None: not sent."""
    acked, receipt = part_fields
    if receipt is not None:
        return Receipt.read(receipt).at
    if acked is not None:
        return Ack.read(acked).at_ms / 1000
    return None


CLICK_STREAM_MAX = 2_000_000  # entries a job's click stream keeps (approximately: XADD MAXLEN ~)


_CLICK = """
local function click(K, row, bot, now, ua, ip, cap)
  if bot == '1' then
    redis.call('HINCRBY', K[1], 'bots', 1)
  else
    local n = redis.call('HINCRBY', K[2], row, 1)
    local minute = tostring(math.floor(tonumber(now) / 60000) * 60)
    redis.call('HINCRBY', K[1], 'total', 1)
    redis.call('HINCRBY', K[4], minute, 1)
    redis.call('HSET', K[2], row .. ':l', now)
    if n == 1 then
      redis.call('HINCRBY', K[1], 'unique', 1)
      redis.call('HINCRBY', K[4], minute .. ':u', 1)
      redis.call('HSET', K[2], row .. ':t', now)
    end
  end
  redis.call('XADD', K[3], 'MAXLEN', '~', cap, '*', 't', now, 'row', row, 'bot', bot, 'ua', ua, 'ip', ip)
end
"""

CLICK_SCRIPT = _CLICK + "click(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])\nreturn 1\n"
"""Records one fetch of a link: KEYS ``click_keys(job)``, ARGV ``click_args(...)``. Clicks by people
count in the job's total, and in its unique clicks the first time a row is clicked (its time kept);
bots apart; every fetch goes to the click stream."""

# Where a key template takes the job's id, the ledger's name and the row's bucket (keys.row_bucket).
_JOB, _LEDGER, _BUCKET = "\x01", "\x02", "\x03"


def _lua_string(text: str) -> str:
    return '"' + "".join(c if c.isalnum() or c in ":{}_.-" else f"\\{ord(c)}" for c in text) + '"'


def follow_script() -> str:
    """One Redis call for a redirect on a single Redis (not a cluster): KEYS ``[keys.link(code)]``,
    ARGV ``follow_args(...)``. It reads the code's owner and returns its job's id, having recorded
    the fetch as ``CLICK_SCRIPT`` does, with the scanner rule applied (a person's fetch within
    *scanner* ms of the row's first part reaching the phone, or else the SMSC, is a bot's); nil for a
    code that leads nowhere: unknown, expired, or its job gone. The job's, the ledger's and the
    clicks' keys are reached by name, not declared: a Redis Cluster has them in other slots, and
    there the redirect takes three calls (``keys.link``, the part's times, ``CLICK_SCRIPT``).

    The key names are ``ulak.keys``'s, filled in here; the part's times are the last ``|`` field of
    ``records.Ack`` and ``records.Receipt`` (unix ms)."""
    names = {
        "JOB": keys.job(_JOB),
        "BUCKET": keys.job_bucket(_JOB, _LEDGER, _BUCKET),
        "CLICKS": keys.job_clicks(_JOB),
        "ROWS": keys.job_clicked_rows(_JOB),
        "EVENTS": keys.job_click_events(_JOB),
        "MINUTES": keys.job_click_minutes(_JOB),
    }
    declared = "".join(f"local {name} = {_lua_string(text)}\n" for name, text in names.items())
    declared += keys.ROW_PLACE_LUA
    return (
        _CLICK
        + declared
        + """
local owner = redis.call('GET', KEYS[1])
if not owner then return false end
local job, row, ledger = string.match(owner, '^([^|]+)|(%d+)|([^|]*)$')
if not job then return false end
local bucket, field = row_place(row)
local function named(template)
  local filled = string.gsub(template, '\\1', function() return job end)
  filled = string.gsub(filled, '\\2', function() return ledger end)
  filled = string.gsub(filled, '\\3', function() return bucket end)
  return filled
end
if redis.call('EXISTS', named(JOB)) == 0 then return false end
local bot = ARGV[1]
local scanner = tonumber(ARGV[6])
if bot == '0' and scanner > 0 and ledger ~= '' then
  local times = redis.call('HMGET', named(BUCKET), field .. ':1:m', field .. ':1:r')
  local at = times[2] or times[1]
  at = at and tonumber(string.match(at, '(%d+)$'))
  if at and tonumber(ARGV[7]) - at < scanner then bot = '1' end
end
click({named(CLICKS), named(ROWS), named(EVENTS), named(MINUTES)}, row, bot, ARGV[2], ARGV[3], ARGV[4],
  ARGV[5])
return job
"""
    )


def follow_args(
    *, bot: bool, user_agent: str, address_hash: str, scanner_seconds: float, stamp: float, now: float
) -> list[str]:
    """``follow_script``'s ARGV: ``click_args``' without the row (the script reads it from the code's
    owner), then the scanner's ms and *now*, the real time the scanner rule compares with the part's
    (unix s; *stamp*, the click's time, is on the runners' clock)."""
    return [
        *_fetch_args(bot=bot, user_agent=user_agent, address_hash=address_hash, stamp=stamp),
        repr(scanner_seconds * 1000),
        repr(now * 1000),
    ]


def click_args(
    *, row: int, bot: bool, user_agent: str, address_hash: str, now: Callable[[], float] = time.time
) -> list[str]:
    return [str(row), *_fetch_args(bot=bot, user_agent=user_agent, address_hash=address_hash, stamp=now())]


def _fetch_args(*, bot: bool, user_agent: str, address_hash: str, stamp: float) -> list[str]:
    """What the click body records of a fetch: bot or not, its time (unix ms), the user agent (cut
    to 256 characters), the address's hash, and how long the click stream is kept."""
    return [
        "1" if bot else "0",
        str(int(stamp * 1000)),
        user_agent[:256],
        address_hash,
        str(CLICK_STREAM_MAX),
    ]


def click_keys(job_id: str) -> list[str]:
    return [
        keys.job_clicks(job_id),
        keys.job_clicked_rows(job_id),
        keys.job_click_events(job_id),
        keys.job_click_minutes(job_id),
    ]


def clicks_view(counters: dict[bytes, bytes]) -> dict[str, int]:
    """The job view's ``clicks``: total and unique clicks by people, and bot fetches apart."""
    return {name: int(counters.get(name.encode(), 0)) for name in ("total", "unique", "bots")}
