"""Automatic answers: opt-out confirmations (one message to a number that opted out by reply,
saying it is done) and keyword answers (help words and a brand's own keywords: ``answer``, once a
day per number and word, by a key that expires; ``ReplyRules.answer`` says what they get).

The replies processor queues a confirmation (``queue``) when it applies an opt-out by reply and the
short code has a confirmation text (``replies.optout_confirmation``, or its rule's). One script
adds the number to the list's confirmed set and queues it only if it was not there, so a reply
read twice, or RET sent again, is confirmed once; an opt-in takes the number out of the set
(``unconfirm``), so a later opt-out is confirmed again.

:class:`ConfirmationSender`, in the replies actor, sends what is queued as jobs, the way survey
follow-ups go (``cluster.engagement.followups``): a batch's stream bounds written first, the job
submitted with an idempotency key made of them, then the batch deleted. A confirmation job is an
ordinary job from the short code, in the brand, except for one internal option
(``confirms_optout``, which no API client may set): its rows are not checked against the opt-out
lists, and refusals do not stop them, since its recipients are on the list because they asked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import structlog

from cluster.engagement.jobmaker import JobMaker, sender_ok
from cluster.jobs.options import JobOptions
from ulak import keys

log = structlog.get_logger("ulak.confirmations")

BATCH = 5000

CONFIRMATION, KEYWORD = "confirmation", "keyword"  # what an answer is (the stream's ``kind``)
JOB_NAMES = {CONFIRMATION: "opt-out confirmations", KEYWORD: "keyword answers"}
DAY = 86400

# KEYS: the list's confirmed set, the answers stream. ARGV: number, brand, sender, text.
_QUEUE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'number', ARGV[1], 'brand', ARGV[2], 'sender', ARGV[3], 'text', ARGV[4],
  'kind', 'confirmation')
return 1
"""

# KEYS: the number's answered key for the keyword, the answers stream. ARGV: number, brand, sender,
# text, seconds until it may be answered again.
_ANSWER = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[5]) then return 0 end
redis.call('XADD', KEYS[2], '*', 'number', ARGV[1], 'brand', ARGV[2], 'sender', ARGV[3], 'text', ARGV[4],
  'kind', 'keyword')
return 1
"""


class Confirmations:
    """Queueing them (the replies processor's side)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._queue = client.register_script(_QUEUE)
        self._answer = client.register_script(_ANSWER)

    def queue(self, number: str, *, brand: str | None, sender: str, text: str) -> bool:
        """Queue *text* to *number*, unless it is confirmed on this list already; whether it was."""
        set_key = keys.optout_confirmed(brand)
        args = [number, brand or "", sender, text]
        return bool(self._queue(keys=[set_key, keys.OPTOUT_CONFIRMATIONS], args=args))

    def answer(self, number: str, *, brand: str | None, sender: str, keyword: str, text: str) -> bool:
        """Queue *text*, the answer to *keyword* sent to *sender*, to *number*, unless it was
        answered that keyword there within a day; whether it was queued."""
        key = keys.keyword_answered(sender, keyword, number)
        args = [number, brand or "", sender, text, DAY]
        return bool(self._answer(keys=[key, keys.OPTOUT_CONFIRMATIONS], args=args))

    def unconfirm(self, number: str, *, brand: str | None) -> None:
        """*number* opted in again: its next opt-out is confirmed again."""
        self.client.srem(keys.optout_confirmed(brand), number)


class ConfirmationSender:
    """Sending them as jobs (the replies actor's side; see the module docstring)."""

    def __init__(self, client: Any, plane: Callable[[], Any]) -> None:
        self.client = client
        self.maker = JobMaker(plane)

    def run_once(self) -> int:
        """Send one batch of what is queued; returns how many confirmations went into jobs."""
        stream = keys.OPTOUT_CONFIRMATIONS
        bounds = self.client.get(keys.OPTOUT_CONFIRMATION_BATCH)
        if bounds:
            first, last = bounds.decode().split(" ")
            entries = self.client.xrange(stream, first, last)
        else:
            entries = self.client.xrange(stream, "-", "+", count=BATCH)
            if not entries:
                return 0
            first, last = entries[0][0].decode(), entries[-1][0].decode()
            self.client.set(keys.OPTOUT_CONFIRMATION_BATCH, f"{first} {last}")
        groups: dict[tuple[str, str, str, str], list[str]] = {}
        for _, fields in entries:
            kind = fields.get(b"kind", CONFIRMATION.encode()).decode()
            key = (kind, fields[b"brand"].decode(), fields[b"sender"].decode(), fields[b"text"].decode())
            groups.setdefault(key, []).append(fields[b"number"].decode())
        for (kind, brand, sender, text), numbers in sorted(groups.items()):
            self._submit((kind, brand or None, sender, text), numbers, f"{first}-{last}")
        pipe = self.client.pipeline(transaction=True)  # one slot: the MO tag's
        if entries:
            pipe.xdel(stream, *[e[0] for e in entries])
        pipe.delete(keys.OPTOUT_CONFIRMATION_BATCH)
        pipe.execute()
        return len(entries)

    def _submit(self, group_key: tuple[str, str | None, str, str], numbers: list[str], span: str) -> str:
        """One job of the answers of one (kind, brand, sender, text) in the batch *span*."""
        kind, brand, sender, text = group_key
        options = JobOptions(
            text_column="metin",
            sender=sender if sender_ok(sender) else None,
            brand=brand,
            name=JOB_NAMES.get(kind, JOB_NAMES[CONFIRMATION]),
            confirms_optout=True,
        )
        group = hashlib.sha256(f"{kind}|{brand}|{sender}|{text}".encode()).hexdigest()[:16]
        digest = hashlib.sha256(f"optout-confirmation:{span}:{group}".encode()).hexdigest()
        made, created = self.maker.submit(
            [(n, text) for n in numbers],
            options,
            name="confirmations.csv",
            source=JOB_NAMES.get(kind, JOB_NAMES[CONFIRMATION]),
            digest=digest,
        )
        if created:
            log.info("replies.answers_sent", kind=kind, job_id=made, rows=len(numbers), brand=brand)
        return made
