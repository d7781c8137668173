"""The replies processor: MO parts from the binds to whole replies, and what they mean.

The binds append every part they read to ``keys.MO_PARTS`` before answering it (``ulak.replies``).
One processor per cluster (``actors.replies.RepliesActor``) reads that stream as the consumer group
``keys.MO_GROUP``, puts concatenated replies together (``Reassembler``), and for each whole reply:

1. reads its sender's number as E.164 (the ingest's normaliser, the configured default region);
2. classifies it by the rule of the short code it was sent to (``replies.rules``, else the
   defaults): an opt-out word puts the number on that brand's list (or the global one), an opt-in
   word takes it off, anything else is a free reply;
3. applies that (idempotent: a second time changes nothing), then in one MULTI (every key in the
   ``{ulak:mo}`` slot) appends the reply to ``keys.MO_MESSAGES``, counts it, and acknowledges and
   deletes its parts.

A processor that dies between 3's two steps reads its unacknowledged parts again when it starts
(its pending list, "0") and writes each reply once. Parts of a concatenated reply stay pending
until the reply is whole, or until ``replies.concat_timeout`` has passed, when what came is kept
marked incomplete.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import redis
import structlog

from cluster.engagement.confirmations import Confirmations
from cluster.jobs.options import JobOptions, Survey
from cluster.webhooks import enqueue
from ingest.numbers import NumberNormalizer
from ulak import keys
from ulak.consent import ONAY, RET, Consent, Consents
from ulak.optouts import OptOuts
from ulak.records import SurveyAsked
from ulak.replies import survey
from ulak.replies.keywords import Keywords, Kind, Verdict, fold
from ulak.replies.mo import MoMessage, MoPart, Reassembler
from ulak.settings import RepliesConfig

log = structlog.get_logger("ulak.replies")

CONSUMER = "processor"

# KEYS: the job's survey answers, counts, replies. ARGV: number, reply id, the answer's counter
# ('' when the reply is none), the answer's record, the free reply's record, its follow-up ('':
# none; queued on KEYS[4] with the first answer only, so sent once). The first answer
# counts; a later reply (or answer) is a comment on it, or, from one who has not answered, a reply
# that is none ("unparsed"). A reply read again (the same id) changes nothing.
_ANSWER = """local old = redis.call('HGET', KEYS[1], ARGV[1])
local rec = old and cjson.decode(old)
if rec and rec['id'] == ARGV[2] then return 'replayed-answer' end
if ARGV[3] ~= '' and not rec then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  redis.call('HINCRBY', KEYS[2], 'responses', 1)
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  if ARGV[6] ~= '' then redis.call('XADD', KEYS[4], '*', 'number', ARGV[1], 'text', ARGV[6]) end
  return 'answer'
end
local free = cjson.decode(ARGV[5])
if rec then
  local comments = rec['comments']
  if type(comments) ~= 'table' then comments = {} end
  for _, c in ipairs(comments) do if c['id'] == ARGV[2] then return 'replayed' end end
  table.insert(comments, {id = ARGV[2], text = free['text'], at = free['at']})
  rec['comments'] = comments
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
  redis.call('HINCRBY', KEYS[2], 'comments', 1)
  if ARGV[3] ~= '' then redis.call('HINCRBY', KEYS[2], 'repeated', 1) end
  free['answer'] = rec['answer']
else
  redis.call('HINCRBY', KEYS[2], 'unparsed', 1)
end
redis.call('LPUSH', KEYS[3], cjson.encode(free))
redis.call('LTRIM', KEYS[3], 0, 999)
return 'comment'
"""
READ_COUNT = 500

# KEYS: each part's seen key (keys.mo_seen). ARGV: the window (s), then each part's entry id and
# received time. Returns per part 1 when another entry carried the same part within the window.
_SEEN = """
local window = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local id, at = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
  local seen = redis.call('GET', key)
  out[i] = 0
  if seen then
    local first, first_at = string.match(seen, '^(.-)|(.*)$')
    if first ~= id and at - tonumber(first_at) <= window then out[i] = 1 end
  end
  if out[i] == 0 then redis.call('SET', key, id .. '|' .. ARGV[2 * i + 1], 'EX', math.ceil(window) + 1) end
end
return out
"""


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole reply as kept in ``keys.MO_MESSAGES``."""

    number: str  # E.164 without '+' (as sent, digits only, when it is no phone number: a name)
    to: str
    text: str
    kind: Kind
    keyword: str
    brand: str | None
    operator: str
    received: float
    parts: int
    complete: bool
    job: str = ""  # the survey it answers, or whose respondent wrote it
    answer: str = ""  # yes, no, or a score 0-10

    def fields(self) -> dict[str, str]:
        return {
            "job": self.job,
            "answer": self.answer,
            "number": self.number,
            "to": self.to,
            "text": self.text,
            "kind": self.kind.value,
            "keyword": self.keyword,
            "brand": self.brand or "",
            "operator": self.operator,
            "received": f"{self.received:.3f}",
            "parts": str(self.parts),
            "complete": "1" if self.complete else "0",
        }

    @staticmethod
    def from_entry(entry_id: bytes | str, raw: dict[bytes, bytes]) -> dict[str, Any]:
        f = {k.decode(): v.decode() for k, v in raw.items()}
        return {
            "id": entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            "number": f["number"],
            "to": f["to"],
            "text": f["text"],
            "kind": f["kind"],
            "keyword": f["keyword"],
            "brand": f["brand"] or None,
            "operator": f["operator"],
            "received": float(f["received"]),
            "parts": int(f["parts"]),
            "complete": f["complete"] == "1",
            "job": f.get("job") or None,
            "answer": f.get("answer") or None,
        }


class ReplyRules:
    """The configured keywords, per short code: opt-out and opt-in words, and the words answered
    automatically (help words, and the rule's own keywords with their answers and lists)."""

    def __init__(self, config: RepliesConfig) -> None:
        self.config = config
        self._default = Keywords.of(
            list(config.optout_words), list(config.optin_words), list(config.help_words)
        )
        self._by_to = {
            r.to: (
                r.brand,
                Keywords.of(
                    list(r.optout_words if r.optout_words is not None else config.optout_words),
                    list(r.optin_words if r.optin_words is not None else config.optin_words),
                    [*config.help_words, *(k.word for k in r.keywords)],
                ),
            )
            for r in config.rules
        }
        self._confirmations = {
            r.to: r.optout_confirmation or config.optout_confirmation for r in config.rules
        }
        self._own = {r.to: {fold(k.word): (k.reply, k.list) for k in r.keywords} for r in config.rules}
        self._help = {
            r.to: _help_text(r.help_reply or config.help_reply, r.name or r.brand or r.to, r.to)
            for r in config.rules
        }

    def answer(self, to: str, keyword: str) -> tuple[str, str | None] | None:
        """What a keyword (folded) sent to *to* gets: (the answer, the list it joins), or None."""
        own = self._own.get(to, {}).get(keyword)
        if own is not None:
            return own
        text = self._help[to] if to in self._help else _help_text(self.config.help_reply, to, to)
        return (text, None) if text is not None else None

    def judge(self, to: str, text: str) -> tuple[Verdict, str | None]:
        brand, words = self._by_to.get(to, (None, self._default))
        return words.classify(text), brand

    def confirmation(self, to: str) -> str | None:
        """The message to confirm an opt-out sent to *to* with (None: none is sent)."""
        return self._confirmations.get(to, self.config.optout_confirmation)


def _help_text(template: str | None, name: str, to: str) -> str | None:
    """A help answer with the brand's *name* and the short code *to* filled in."""
    return template.replace("{name}", name).replace("{to}", to) if template else None


KEYWORD_FIELDS = ("optout_words", "optin_words", "help_words", "help_reply", "rules")


def keyword_config(client: Any, config: RepliesConfig) -> tuple[RepliesConfig, bytes | None]:
    """The keyword rules in force: the configuration's, with what the API set in their place."""
    raw = client.get(keys.REPLY_KEYWORDS)
    if raw is None:
        return config, None
    stored = json.loads(raw)
    return RepliesConfig.model_validate(
        {**config.model_dump(), **{k: v for k, v in stored.items() if k in KEYWORD_FIELDS}}
    ), raw


class ReplyProcessor:
    def __init__(self, client: Any, config: RepliesConfig, *, default_region: str = "TR") -> None:
        self.client = client
        self.config = config
        self.rules = ReplyRules(config)
        self._keywords_raw: bytes | None = None
        self._keywords_at = 0.0
        self.optouts = OptOuts(client)
        self.consents = Consents(client)
        self.confirmations = Confirmations(client)
        self._record_answer = client.register_script(_ANSWER)
        self._surveys: dict[str, Survey | None] = {}
        self.normalizer = NumberNormalizer(default_region)
        self.reassembler = Reassembler(timeout=config.concat_timeout)
        self._seen = client.register_script(_SEEN)  # SMSC resends (``_duplicates``)
        self._held: set[str] = set()  # entry ids held by the reassembler (not acknowledged yet)
        # This consumer's pending entries are read first, from here on (a restart's leftovers: the
        # parts a processor before this one read and had not written as replies); None once done.
        self._backlog: str | None = "0"
        self.processed = 0

    def _refresh_keywords(self) -> None:
        if time.monotonic() - self._keywords_at < 2.0:
            return
        self._keywords_at = time.monotonic()
        config, raw = keyword_config(self.client, self.config)
        if raw != self._keywords_raw:
            self._keywords_raw = raw
            self.rules = ReplyRules(config)
            log.info("replies.keywords", source="api" if raw is not None else "config")

    def restart(self) -> None:
        """Forget what is held in memory and read this consumer's pending parts again (after an
        error that may have come between reading and writing)."""
        self.reassembler = Reassembler(timeout=self.config.concat_timeout)
        self._held.clear()
        self._backlog = "0"

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(keys.MO_PARTS, keys.MO_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run_once(self, block_ms: int = 1000) -> int:
        """Read what came (waiting up to *block_ms* for it), write the replies that are whole;
        returns how many were written."""
        self._refresh_keywords()
        backlog = self._backlog
        entries = self._read(backlog, block_ms)
        if backlog is not None:
            self._backlog = entries[-1][0].decode() if entries else None
            entries = [(i, f) for i, f in entries if i.decode() not in self._held]
            if self._backlog is None:  # the backlog is done: on to what is new, in this call
                entries = self._read(None, block_ms)
        done: list[tuple[MoMessage, list[object]]] = []
        duplicates: list[str] = []
        parts: list[tuple[str, MoPart]] = []
        for entry_id, raw in entries:
            eid = entry_id.decode()
            if not raw:  # deleted before it was acknowledged
                duplicates.append(eid)
                continue
            try:
                part = MoPart.unpack(raw)
            except (KeyError, ValueError) as exc:
                log.error("reply.unreadable", entry=eid, error=f"{type(exc).__name__}: {exc}")
                duplicates.append(eid)
                continue
            parts.append((eid, part))
        resent = self._duplicates(parts)
        duplicates += sorted(resent)
        for eid, part in parts:
            if eid in resent:
                continue
            whole = self.reassembler.add(part, eid)
            if whole is None:
                self._held.add(eid)
            else:
                done.append(whole)
        done.extend(self.reassembler.expired(time.time()))
        written = self._write(done) if done else 0
        if duplicates:
            pipe = self.client.pipeline(transaction=True)
            pipe.xack(keys.MO_PARTS, keys.MO_GROUP, *duplicates)
            pipe.xdel(keys.MO_PARTS, *duplicates)
            pipe.hincrby(keys.MO_COUNTS, "duplicate", len(duplicates))
            pipe.execute()
        self.processed += written
        return written

    def _read(self, backlog: str | None, block_ms: int) -> list[Any]:
        answer = self.client.xreadgroup(
            keys.MO_GROUP,
            CONSUMER,
            {keys.MO_PARTS: backlog or ">"},
            count=READ_COUNT,
            block=None if backlog else block_ms,
        )
        return list(answer[0][1]) if answer else []

    def _duplicates(self, parts: list[tuple[str, MoPart]]) -> set[str]:
        """The entries of *parts* (entry id, part) that are the SMSC sending again a part it had sent
        within ``duplicate_seconds`` (its answer was lost): one script a batch, over keys that
        outlive this process (a restarted processor, or one on another node, still knows them).
        A part read again by its own entry id (a restart's backlog) is no duplicate."""
        window = self.config.duplicate_seconds
        if window <= 0 or not parts:
            return set()
        digests = [
            hashlib.blake2b(
                "\x1f".join(
                    (
                        part.smsc,
                        part.source,
                        part.dest,
                        str(part.data_coding),
                        part.body.hex(),
                        json.dumps(part.concat),
                    )
                ).encode(),
                digest_size=16,
            ).hexdigest()
            for _, part in parts
        ]
        args: list[Any] = [window]
        for eid, part in parts:
            args += [eid, f"{part.received:.3f}"]
        answers = self._seen(keys=[keys.mo_seen(d) for d in digests], args=args)
        return {eid for (eid, _), dup in zip(parts, answers, strict=True) if dup}

    def _write(self, done: list[tuple[MoMessage, list[object]]]) -> int:
        numbers = self._numbers([m.source for m, _ in done])
        replies = []
        for (message, tags), number in zip(done, numbers, strict=True):
            verdict, brand = self.rules.judge(message.dest, message.text)
            reply = Reply(
                number=number,
                to=message.dest,
                text=message.text,
                kind=verdict.kind,
                keyword=verdict.keyword,
                brand=brand,
                operator=message.smsc,
                received=message.received,
                parts=message.parts,
                complete=message.complete,
            )
            if reply.kind is Kind.REPLY:
                reply = self._survey(reply, min(str(t) for t in tags))
            replies.append(reply)
        # What a reply means first (idempotent), then the reply itself and its parts' acknowledgement
        # in one MULTI: a crash between the two reads the parts again and does both again.
        # An opt-out is a RET on the consent record too (an opt-in an ONAY), so that a commercial job
        # leaves the number out even if an older ONAY was imported for it.
        for reply in replies:
            if reply.kind is Kind.OPT_OUT:
                self.optouts.add(
                    [reply.number], brand=reply.brand, source="mo", detail=reply.text, at=reply.received
                )
                self.consents.record([Consent(reply.number, RET, reply.received, "mo")], brand=reply.brand)
                text = self.rules.confirmation(reply.to)
                if text is not None:  # once per opt-out (cluster.engagement.confirmations)
                    self.confirmations.queue(reply.number, brand=reply.brand, sender=reply.to, text=text)
            elif reply.kind is Kind.OPT_IN:
                self.optouts.remove([reply.number], brand=reply.brand)
                self.confirmations.unconfirm(reply.number, brand=reply.brand)
                self.consents.record([Consent(reply.number, ONAY, reply.received, "mo")], brand=reply.brand)
            elif reply.kind is Kind.KEYWORD and (answer := self.rules.answer(reply.to, reply.keyword)):
                text, joins = answer
                if joins is not None:
                    self.client.sadd(keys.keyword_list(reply.brand, joins), reply.number)
                self.confirmations.answer(
                    reply.number, brand=reply.brand, sender=reply.to, keyword=reply.keyword, text=text
                )
        # Webhooks queued before the reply is written: a crash between queues them again (a
        # receiver sees the delivery id twice), never loses them.
        for reply, (_, tags) in zip(replies, done, strict=True):
            self._notify(reply, min(str(t) for t in tags))
        pipe = self.client.pipeline(transaction=True)
        ids: list[str] = []
        for reply, (message, tags) in zip(replies, done, strict=True):
            pipe.xadd(keys.MO_MESSAGES, reply.fields(), maxlen=self.config.keep, approximate=True)
            pipe.hincrby(keys.MO_COUNTS, "messages", 1)
            pipe.hincrby(keys.MO_COUNTS, "parts", message.parts)
            pipe.hincrby(keys.MO_COUNTS, reply.kind.value, 1)
            if not message.complete:
                pipe.hincrby(keys.MO_COUNTS, "incomplete", 1)
            ids += [str(t) for t in tags]
        pipe.xack(keys.MO_PARTS, keys.MO_GROUP, *ids)
        pipe.xdel(keys.MO_PARTS, *ids)
        pipe.execute()
        self._held.difference_update(ids)
        for reply in replies:
            log.info(
                "reply.received",
                kind=reply.kind.value,
                to=reply.to,
                brand=reply.brand,
                parts=reply.parts,
                complete=reply.complete,
            )
        return len(replies)

    def _survey(self, reply: Reply, reply_id: str) -> Reply:
        """A free reply from someone a survey asked, to where its answers come, within its window:
        their answer (the first counts), or a comment on it; recorded in the job's survey keys
        (idempotent: a reply read again after a crash is recognised by its id)."""
        found = self.client.hget(keys.survey_index(reply.to), reply.number)
        if found is None:
            return reply
        asked_by = SurveyAsked.read(found)
        job_id, kind = asked_by.job_id, asked_by.kind
        if not asked_by.answers_at(reply.received):
            return reply
        answer: str | int | None = survey.yes_no(reply.text) if kind == "yes_no" else survey.score(reply.text)
        field = "" if answer is None else (str(answer) if kind == "yes_no" else f"s{answer}")
        asked = self._survey_of(job_id)
        followup = asked.followup(answer) if asked is not None and answer is not None else None
        record: dict[str, Any] = {
            "id": reply_id,
            "answer": answer,
            "at": reply.received,
            "seconds": round(reply.received - asked_by.since, 3),
            "text": reply.text[:1000],
            "comments": [],
        }
        free = {"id": reply_id, "number": reply.number, "at": reply.received, "text": reply.text[:1000]}
        outcome = self._record_answer(
            keys=list(keys.job_survey_keys(job_id)),
            args=[
                reply.number,
                reply_id,
                field,
                json.dumps(record, ensure_ascii=False),
                json.dumps(free, ensure_ascii=False),
                followup or "",
            ],
        )
        if outcome == b"answer" and followup:
            self.client.sadd(keys.FOLLOWUP_JOBS, job_id)
        taken = outcome in (b"answer", b"replayed-answer")
        return replace(
            reply, kind=Kind.ANSWER if taken else Kind.REPLY, job=job_id, answer=str(answer) if taken else ""
        )

    def _notify(self, reply: Reply, reply_id: str) -> None:
        """The reply to ``replies.webhook_url`` (every reply: type mo, with what it meant), and a
        survey answer to its job's webhook too (type answer)."""
        event = {
            "number": reply.number,
            "to": reply.to,
            "text": reply.text,
            "kind": reply.kind.value,
            "brand": reply.brand,
            "received": reply.received,
            "job": reply.job or None,
            "answer": reply.answer or None,
        }
        if self.config.webhook_url:
            body = {
                "job_id": reply.job or None,
                "delivery": f"mo/{reply_id}",
                "events": [{"type": "mo", **event}],
            }
            enqueue(self.client, self.config.webhook_url, secret_of="replies", body=body)
        if reply.kind is Kind.ANSWER and reply.job:
            url = self.client.hget(keys.job(reply.job), "webhook_url")
            if url is not None:
                body = {
                    "job_id": reply.job,
                    "delivery": f"answer/{reply_id}",
                    "events": [{"type": "answer", **event}],
                }
                enqueue(self.client, url.decode(), secret_of=f"job:{reply.job}", body=body)

    def _survey_of(self, job_id: str) -> Survey | None:
        if job_id not in self._surveys:
            raw = self.client.hget(keys.job(job_id), "options")
            self._surveys[job_id] = JobOptions.model_validate_json(raw).survey if raw else None
            if len(self._surveys) > 1000:
                self._surveys.pop(next(iter(self._surveys)))
        return self._surveys[job_id]

    def _numbers(self, sources: list[str]) -> list[str]:
        """Each sender as E.164 without '+'; one that is no phone number as its digits (or as
        sent, when it has none: an alphanumeric sender)."""
        normalized = self.normalizer.normalize(pa.array(sources, pa.string())).e164.to_pylist()
        out = []
        for source, e164 in zip(sources, normalized, strict=True):
            digits = "".join(ch for ch in source if ch.isdigit())
            out.append(e164 or digits or source)
        return out


def survey_summary(client: Any, job_id: str, kind: str, *, delivered: int) -> dict[str, Any]:
    """A survey job's results: response rate (respondents / delivered), time to answer (from when
    the job began sending), YES/NO counts and shares or the NPS distribution and NPS, and the free
    replies (comments after an answer, and replies that were none), newest first."""
    pipe = client.pipeline(transaction=True)  # one slot: the job's
    pipe.hgetall(keys.job_survey_counts(job_id))
    pipe.hvals(keys.job_survey_answers(job_id))
    pipe.lrange(keys.job_survey_replies(job_id), 0, 99)
    pipe.hget(keys.job(job_id), "followup_jobs")
    raw_counts, raw_answers, raw_replies, followup_jobs = pipe.execute()
    c = {k.decode(): int(v) for k, v in raw_counts.items()}
    answers = [json.loads(a) for a in raw_answers]
    seconds = sorted(float(a["seconds"]) for a in answers)
    responses = c.get("responses", 0)
    out: dict[str, Any] = {
        "kind": kind,
        "responses": responses,
        "response_rate": round(responses / delivered, 4) if delivered else None,
        "time_to_answer": {
            "p50_seconds": _quantile(seconds, 0.5),
            "p90_seconds": _quantile(seconds, 0.9),
        },
        "comments": c.get("comments", 0),
        "unparsed": c.get("unparsed", 0),
        "repeated": c.get("repeated", 0),
        "followups": {
            "sent": c.get("followups", 0),  # handed to follow-up jobs (each sent as any job is)
            "jobs": followup_jobs.decode().split() if followup_jobs else [],
        },
        "free_replies": [{k: v for k, v in json.loads(r).items() if k != "id"} for r in raw_replies],
    }
    if kind == "yes_no":
        yes, no = c.get("yes", 0), c.get("no", 0)
        out["yes_no"] = {
            "yes": yes,
            "no": no,
            "yes_share": round(yes / (yes + no), 4) if yes + no else None,
            "no_share": round(no / (yes + no), 4) if yes + no else None,
        }
    else:
        distribution = {s: c.get(f"s{s}", 0) for s in range(11)}
        groups = {"promoters": 0, "passives": 0, "detractors": 0}
        for s, n in distribution.items():
            groups[survey.group(s) + "s"] += n
        scored = sum(distribution.values())
        out["nps"] = {
            "distribution": {str(s): n for s, n in distribution.items()},
            **groups,
            **{f"{g}_share": round(n / scored, 4) if scored else None for g, n in groups.items()},
            "nps": survey.nps(distribution),
        }
    return out


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[max(0, math.ceil(q * len(values)) - 1)], 3)  # nearest rank


def counts(client: Any) -> dict[str, int]:
    raw = client.hgetall(keys.MO_COUNTS)
    names = ("messages", "parts", "optout", "optin", "answer", "reply", "incomplete", "duplicate")
    base = dict.fromkeys(names, 0)
    base.update({k.decode(): int(v) for k, v in raw.items()})
    return base


def recent(
    client: Any, *, limit: int = 100, before: str = "+", kind: str | None = None
) -> list[dict[str, Any]]:
    """The latest replies, newest first (``before``: an id to page back from, exclusive)."""
    out: list[dict[str, Any]] = []
    end = before if before == "+" else f"({before}"
    while len(out) < limit:
        batch = client.xrevrange(keys.MO_MESSAGES, max=end, min="-", count=max(limit, 100))
        if not batch:
            break
        for entry_id, raw in batch:
            reply = Reply.from_entry(entry_id, raw)
            if kind is None or reply["kind"] == kind:
                out.append(reply)
                if len(out) == limit:
                    break
        end = f"({batch[-1][0].decode()}"
    return out
