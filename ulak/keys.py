"""Every Redis key Ulak uses, named in one place (in the manner of arq's ``constants.py``).

Each function documents what its key holds and when it expires. Nothing else in the code base builds
a key string by hand; Lua scripts receive these names (or the templates below) as arguments.
"""

from __future__ import annotations

import zlib

PREFIX = "ulak"


def tag(ledger: str) -> str:
    """The hash tag of a ledger's state: every key a ledger call touches carries it, so that on a
    Redis Cluster one call is one slot (ledger names are operator names, ``[A-Za-z0-9_.-]+``: no
    braces)."""
    return f"{{{ledger}}}"


# Two kinds of keys. A job's own keys (record, counters written by its runner and the API, samples)
# are tagged with the job id, so a MULTI over them is one slot. What binds write (parts, rows, message
# ids, receipts, inboxes, fences) is tagged with its operator's *ledger* (``OperatorConfig.ledger``:
# the operator's own name, unless operators share an SMSC account and so the receipts of their
# messages): a bind's ledger call touches only that slot, and a cluster spreads ledgers over shards.
# A job's figures are the sum of its own counters and its ledgers' (``ledger.LedgerReader``).


def job(job_id: str) -> str:
    """Hash: the job record (state, timestamps, options; ``ledgers`` once prepared: each operator its
    rows go to and its ledger, ``op:ledger`` comma-separated). Lives as long as the job is kept."""
    return f"{PREFIX}:job:{{{job_id}}}"


def job_counters(job_id: str) -> str:
    """Hash: the job's own counters (total, accepted, refused, cancelled, webhook_dead…), written by
    its runner and the API; the ledger's are per ledger (:func:`job_op_counters`)."""
    return f"{PREFIX}:job:{{{job_id}}}:counters"


def job_op_counters(job_id: str, ledger: str) -> str:
    """Hash: the ledger's counters (``ulak.dispatch.ledger.COUNTERS``) of the job's rows that go to
    *ledger*'s operators, in messages and parts. Kept as long as the job."""
    return f"{PREFIX}:{tag(ledger)}:job:{job_id}:counters"


ROWS_A_BUCKET = 20
"""Rows a ledger hash keeps together (rows ``20b`` to ``20b + 19`` in bucket ``b``): a hash of a few
dozen short fields is stored as one compact list (Redis's listpack or ziplist, under
``hash-max-listpack-entries``, 512 by default), where one hash of a job's million rows is a hash
table: ~370 bytes a single-part row against ~110 in buckets of ten rows (BENCHMARKS.md, "10 million
rows"). Twenty rather than ten: each bucket's key costs ~150 bytes whatever it holds, and a
campaign's rows are spread over its operators' ledgers (three: ~6.7 rows of a ledger a key, not
~3.4), ~20 bytes a row less (BENCHMARKS.md, "The ledger in one hash a bucket"). Not more: a bucket
stays a compact list while a ledger's rows in it have up to 512 fields, which twenty rows of one
operator reach at eight parts each (a single-part row has four fields, each further part three).
The Lua scripts find a row's bucket and field by arithmetic on its number (exact: rows are far
below 2^53)."""

ROWS_A_SPLIT_BUCKET = 10
"""Rows a bucket of layout ``3`` held (:func:`job_rows_split`): its bucket was the row's decimal digits
but the last; read only to move them (``cluster.jobs.legacy``)."""


def row_bucket(row: int) -> int:
    """The bucket of *row* in :func:`job_bucket` (rows are 1-based, so bucket 0 holds rows 1 to 19)."""
    return row // ROWS_A_BUCKET


def row_field(row: int) -> str:
    """What *row*'s fields in its :func:`job_bucket` hash start with: its place in its bucket, 0 to
    19 (the bucket names the rest)."""
    return str(row % ROWS_A_BUCKET)


ROW_PLACE_LUA = f"""local function row_place(row)  -- keys.row_bucket, keys.row_field of a decimal string
  local n = tonumber(row)
  local b = math.floor(n / {ROWS_A_BUCKET})
  return tostring(b), tostring(n - b * {ROWS_A_BUCKET})
end
"""
"""Lua, put ahead of the scripts that name a row's bucket hash (the ledger's, the redirect's):
:func:`row_bucket` and :func:`row_field` by arithmetic on the row's number (exact on Lua's doubles
far beyond any row count)."""


def job_bucket(job_id: str, ledger: str, bucket: int | str) -> str:
    """Hash: the rows of *bucket* (:func:`row_bucket`) that go to an operator of *ledger*, each
    named by :func:`row_field` (``<r>`` below). Per row its state (``<r>``: s, a, f, u, x); for a
    multi-part row also parts acknowledged (``<r>:a``), parts delivered (``<r>:d``), its first
    negative receipt (``<r>:n``) and its outcome (``<r>:o``; a single-part row's outcome is its
    part's receipt); a stopped row's reason (``<r>:x``). Per part (``<r>:<part>``) its submit state
    (s, a, f, u, x); for the report, its message id and ack time (``<r>:<part>:m`` = ``id|unix_ms``),
    failure status (``<r>:<part>:e``) and receipt (``<r>:<part>:r`` = ``status|error|unix_ms``).
    One hash for all of a row, its field names short, twice the rows a key: ~90 bytes a single-part
    row less than the rows and parts hashes of layout ``3`` (BENCHMARKS.md, "The ledger in one hash
    a bucket").
    Kept as long as the job."""
    return f"{PREFIX}:{tag(ledger)}:job:{job_id}:b:{bucket}"


def job_rows_split(job_id: str, ledger: str, bucket: int | str) -> str:
    """Hash: layout ``3``'s rows of *bucket* (the row's number over :data:`ROWS_A_SPLIT_BUCKET`),
    fields named by the whole row number (``<row>``, ``<row>:o``, ...); read only to move them into
    :func:`job_bucket` (``cluster.jobs.legacy``)."""
    return f"{PREFIX}:{tag(ledger)}:job:{job_id}:rows:{bucket}"


def job_parts_split(job_id: str, ledger: str, bucket: int | str) -> str:
    """Hash: layout ``3``'s parts of *bucket* (``<row>:<part>``, ...); see :func:`job_rows_split`."""
    return f"{PREFIX}:{tag(ledger)}:job:{job_id}:parts:{bucket}"


def job_rows_flat(job_id: str, ledger: str) -> str:
    """Hash: a job's rows as one hash, the layout before buckets (``LAYOUT`` ``2``); read only to move
    them into :func:`job_bucket` (``cluster.jobs.legacy``)."""
    return f"{PREFIX}:{tag(ledger)}:job:{job_id}:rows"


def job_parts_flat(job_id: str, ledger: str) -> str:
    """Hash: a job's parts as one hash, before buckets; see :func:`job_rows_flat`."""
    return f"{PREFIX}:{tag(ledger)}:job:{job_id}:parts"


def ledger_templates(ledger: str) -> tuple[str, str]:
    """:func:`job_op_counters` and :func:`job_bucket` of *ledger* with ``%s`` for the job id and the
    bucket left off (the Lua ledger script handles events of many jobs in one call, and appends each
    row's :func:`row_bucket`)."""
    return job_op_counters("%s", ledger), job_bucket("%s", ledger, "")


MESSAGE_ID_BUCKETS = 1 << 17
"""Hashes a ledger's message-id map is spread over, per period and SMSC (:func:`message_ids`): tens
of ids a hash at millions of messages a period, which Redis stores as compact lists (a string key of
its own with a TTL took ~215 bytes an id: BENCHMARKS.md, "10 million rows"), as long as a hash keeps
fewer than ``hash-max-listpack-entries`` / 2 ids (512 entries by default in Redis 6.2 and 7): up to
~30M ids a period. With 2¹⁶ buckets and 128 entries, 10M ids made ~152 a hash, and Redis made each
a hash table: ~142 bytes an id."""


def message_ids_prefix(ledger: str) -> str:
    """What :func:`message_ids` keys of *ledger* start with (the ledger script appends the period,
    the SMSC and the bucket)."""
    return f"{PREFIX}:{tag(ledger)}:ids:"


def message_ids(ledger: str, period: int, smsc: str, bucket: int | str) -> str:
    """Hash: the message ids that *smsc* (a bind's SMSC identity: ids are unique only per SMSC) gave
    parts of *ledger* acknowledged in *period* (:func:`message_id_period`), whose
    :func:`message_id_bucket` is *bucket*. Field: the id as normalised; value: ``job|row|ms`` for a
    single-part row, ``|a`` appended when the row was acked then (its receipt settles it without
    reading the row), ``job|row|ms|part|parts`` for a part of a longer one, where ``ms`` is when the
    part was acked, in milliseconds since the period began (``period * ttl``; empty when not known:
    ids moved from layout 4 without one), and ``job`` the job's number (:func:`message_id_jobs`);
    read by ``records.MessageOwner``. The SMSC is in the key, not in each field, the job a number
    and the time short: ~45 bytes an id less than layout 4's ``smsc:id`` fields and
    ``job|row|part|parts|unix_ms`` values. Written when the submit_sm_resp arrives; a receipt
    looks in its period's and the one before. Expires at the end of the period after its own: an id
    stays matchable for at least the map's TTL (``RedisLedger.message_ttl``: the validity period plus
    a day), at most twice it. Receipts come back on any bind of the account that sent, so the map is
    its ledger's."""
    return f"{message_ids_prefix(ledger)}{period}:{message_ids_suffix(smsc, bucket)}"


def message_id_jobs(ledger: str) -> str:
    """Hash: the numbers *ledger*'s message-id map names jobs by in its values: ``<job id>`` →
    ``<n>``, ``#<n>`` → ``<job id>``, and ``#`` → the last number given (a job id in every value
    took 19 bytes, its number takes a few). Given by the ledger script at a job's first ack in a
    call, kept as long as the map's newest hashes."""
    return f"{message_ids_prefix(ledger)}jobs"


def message_ids_suffix(smsc: str, bucket: int | str) -> str:
    """The end of a :func:`message_ids` key after its period: the ledger script takes it built."""
    return f"{smsc}:{bucket}"


def message_id_field(smsc: str, normalized_id: str) -> str:
    """An id as ``smsc:id``: its early receipt's key's end (:func:`early_receipt`), and its field in
    the map before layout 5 (``cluster.jobs.legacy``)."""
    return f"{smsc}:{normalized_id}"


def message_id_bucket(normalized_id: str) -> int:
    """Which of the :data:`MESSAGE_ID_BUCKETS` hashes keeps an id: its CRC-32's low bits."""
    return zlib.crc32(normalized_id.encode()) & (MESSAGE_ID_BUCKETS - 1)


def message_id_period(unix_s: float, ttl: int) -> int:
    """The period of the message-id map at *unix_s*, for a map kept *ttl* seconds (the ledger script
    reads Redis's clock for it)."""
    return int(unix_s // ttl)


def message_ids_near(
    ledger: str, smsc: str, normalized_id: str, unix_s: float, ttl: int
) -> list[tuple[str, int]]:
    """The :func:`message_ids` hashes that may keep an id at *unix_s* by a clock other than Redis's,
    each with its period: its period's, the one before (where the ledger script also looks), and the
    one after, should Redis's clock be past the turn of the period."""
    period, bucket = message_id_period(unix_s, ttl), message_id_bucket(normalized_id)
    return [(message_ids(ledger, p, smsc, bucket), p) for p in (period + 1, period, period - 1)]


def early_receipt_prefix(ledger: str) -> str:
    return f"{PREFIX}:{tag(ledger)}:early:"


def early_receipt(ledger: str, smsc: str, normalized_id: str) -> str:
    """String ``status|error``: a receipt that arrived before its submit_sm_resp was recorded. Matched
    (and deleted) when the id is recorded; expires with the message-id map's TTL."""
    return f"{early_receipt_prefix(ledger)}{message_id_field(smsc, normalized_id)}"


def early_receipts_held(ledger: str) -> str:
    """Hash: per SMSC identity of *ledger*, how many early receipts may still be held (+1 when one is
    held, -1 when it is matched). Its TTL is renewed with each one held, so it expires with the last of
    them. An ack looks for an early receipt of its id only while this says there may be one (saves a
    read per message)."""
    return f"{PREFIX}:{tag(ledger)}:early-held"


def receipt_stats(ledger: str) -> str:
    """Hash: *ledger*'s receipts held early (``held``), matched late (``matched_late``), and found in
    the map under a job number nothing names any more (``unowned``: keys deleted by hand). Never
    expires."""
    return f"{PREFIX}:{tag(ledger)}:receipts:stats"


def receipt_latency(ledger: str) -> str:
    """Hash: *ledger*'s receipt latency (a part's ack to its final receipt) as bucket counts: field =
    the bucket's upper bound in seconds (``1``, ``5``, … ``86400``, ``+Inf``), plus ``sum`` in
    seconds. Never expires."""
    return f"{PREFIX}:{tag(ledger)}:receipts:latency"


OPTOUT = f"{PREFIX}:optout"
"""Set: E.164 numbers that opted out of everything (the global list). Never expires."""


def optout_set(brand: str | None) -> str:
    """Set: the numbers on *brand*'s opt-out list (None: the global list, ``OPTOUT``)."""
    return OPTOUT if brand is None else f"{OPTOUT}:{brand}"


def optout_meta(brand: str | None) -> str:
    """Hash, number -> JSON {source, at, …}: where each entry of the list came from. In the list's
    slot (its name as the hash tag), so that both change in one MULTI on a Redis Cluster."""
    return f"{{{optout_set(brand)}}}:meta"


OPTOUT_BRANDS = f"{PREFIX}:optout-brands"
"""Set: the brands that have an opt-out list of their own."""


def consent_records(brand: str | None) -> str:
    """Hash, number -> JSON {status, at, source}: each number's consent on record (``ulak.consent``),
    the global list's or *brand*'s. Never expires."""
    name = "consent" if brand is None else f"consent:{brand}"
    return f"{PREFIX}:{{{name}}}:records"


def consent_granted(brand: str | None) -> str:
    """Set: the numbers whose consent on record is ONAY; in its records' slot (one script keeps the
    two in step). Never expires."""
    name = "consent" if brand is None else f"consent:{brand}"
    return f"{PREFIX}:{{{name}}}:onay"


REFUSALS = f"{PREFIX}:{{refusals}}"
"""Stream: every opt-out and every consent withdrawn (RET), as they are recorded (``ulak.refusals``:
``k`` kind, ``b`` brand or empty, ``n`` the numbers comma-separated, ``t`` unix time); every job's
runner and every bind follow it to stop rows still unsent. Capped near ``refusals.STREAM_MAX``
entries (each up to 5,000 numbers); readers only look back minutes."""

CAP_SHARDS = 16  # slots the frequency caps' histories spread over on a Redis Cluster


def cap_history(shard: int, number: str) -> str:
    """Sorted set: the capped messages handed to be sent to *number* lately, each member
    ``<c|i>|<brand>|<job>:<row>`` (commercial or not) scored by when (unix ms, the runner's clock);
    ``ulak.caps`` trims what is older than the longest cap's window and expires the key after it.
    Tagged with its shard (``ulak.caps.shard_of``), so one script a shard checks a batch."""
    return f"{PREFIX}:{{caps:{shard}}}:{number}"


CLOCK_OFFSET = f"{PREFIX}:{{clock}}:offset"
"""String: seconds added to the system time by runners whose ``jobs.clock`` is ``offset`` (tests and
rehearsals of a schedule: ``ulak.clock``). Never expires; absent means none."""


MO_TAG = "{ulak:mo}"
MO_PARTS = f"{PREFIX}:{MO_TAG}:parts"
"""Stream: MO parts as the binds read them, written before each deliver_sm_resp (``ulak.replies``);
read by the replies processor's consumer group, deleted once their message is written."""
MO_MESSAGES = f"{PREFIX}:{MO_TAG}:messages"
"""Stream: whole replies (text, sender, what they meant), newest last, capped (``replies.keep``)."""
MO_COUNTS = f"{PREFIX}:{MO_TAG}:counts"
"""Hash: replies counted by kind (parts, messages, optout, optin, reply, incomplete, duplicate)."""
MO_SEEN = f"{PREFIX}:{MO_TAG}:seen"
"""Sorted set, part digest -> unix time: parts seen lately (a part the SMSC sends again)."""
MO_GROUP = "replies"
OPTOUT_CONFIRMATIONS = f"{PREFIX}:{MO_TAG}:confirmations"
"""Stream: automatic answers to send (``number``, ``brand``, ``sender``, ``text``, ``kind``:
``confirmation`` of an opt-out or ``keyword``), queued by the replies processor, sent as jobs by
``cluster.engagement.confirmations`` and deleted then."""
OPTOUT_CONFIRMATION_BATCH = f"{PREFIX}:{MO_TAG}:confirmations:batch"
"""String ``first last``: the stream ids of the confirmations being made into a job (written before
the job is submitted, cleared after: a sender that dies tries the same batch again)."""


def optout_confirmed(brand: str | None) -> str:
    """Set: the numbers confirmed (or queued to be) on *brand*'s opt-out list (None: the global
    one), so a number gets one confirmation per opt-out; an opt-in takes it out. In the MO slot."""
    return f"{PREFIX}:{MO_TAG}:confirmed:{brand or '*'}"


def mo_seen(digest: str) -> str:
    """String ``entry id|received``: the first stream entry that carried a reply's part with this
    digest (its SMSC, numbers, coding, body, concatenation), so the SMSC sending it again, its
    answer lost, is counted once, whichever processor reads it; expires after
    ``replies.duplicate_seconds``. In the MO slot."""
    return f"{PREFIX}:{MO_TAG}:seen:{digest}"


def keyword_answered(to: str, word: str, number: str) -> str:
    """String: *number* was answered for keyword *word* (folded) sent to *to*; expires after a day,
    so a keyword is answered once a day per number. In the MO slot."""
    return f"{PREFIX}:{MO_TAG}:answered:{to}:{word}:{number}"


def keyword_list(brand: str | None, name: str) -> str:
    """Set: the numbers that joined list *name* of *brand* (None: no brand) by sending its keyword
    (``ReplyRule.keywords``). Never expires; ``GET /v1/replies/lists/<name>`` reads it."""
    return f"{PREFIX}:{MO_TAG}:list:{brand or '*'}:{name}"


REPLY_KEYWORDS = f"{PREFIX}:{MO_TAG}:keywords"
"""String, JSON {optout_words, optin_words, rules}: keyword rules set by the API (``PUT
/v1/replies/keywords``), in place of the configuration's; the processor reads it every 2 s."""


LAYOUT = f"{PREFIX}:layout"
"""String: the key layout this Redis holds, ``4`` (hash-tagged, a row's every field in its bucket's
hash: this module's) once the jobs an older Ulak left are moved into it (``cluster.jobs.legacy``;
``3``: a rows and a parts hash a bucket, fields named by the whole row number; ``2``: tagged, one rows
and one parts hash a job and ledger); the control plane then skips the move at start. Never
expires."""


INGEST_STATS = f"{PREFIX}:stats:ingest"
"""Hash: every job's ingest added up, for ``/metrics``: ``jobs``, ``rows`` (read), ``accepted`` and
``seconds`` (the time preparing took). Counters: only ever incremented, never expire."""


BIND_REPLACEMENTS = f"{PREFIX}:stats:bind_replacements"
"""Hash: ``operator/bind`` -> how many times the bind pool found that bind's process dead (its node
lost, or a crash) and made it again, for ``/metrics``. Counters: only ever incremented, never expire."""


JOBS = f"{PREFIX}:jobs"
"""Sorted set: every job id, scored by creation time (unix seconds). Entries live as long as the job."""


def job_clicks(job_id: str) -> str:
    """Hash: the job's link clicks, ``total`` and ``unique`` (by people) and ``bots`` (previews,
    scanners, HEAD; ``ulak.links``), written by the redirect service. Kept as long as the job."""
    return f"{PREFIX}:job:{{{job_id}}}:clicks"


def job_clicked_rows(job_id: str) -> str:
    """Hash: per row whose link a person clicked, its clicks (``<row>``), the first one's time
    (``<row>:t``, unix ms) and the last one's (``<row>:l``). Kept as long as the job."""
    return f"{PREFIX}:job:{{{job_id}}}:clicks:rows"


def job_click_events(job_id: str) -> str:
    """Stream: every fetch of the job's links (``t`` unix ms, ``row``, ``bot`` 0/1, ``ua`` the user
    agent, ``ip`` a salted hash of the client address), capped near ``links.CLICK_STREAM_MAX``
    entries. Kept as long as the job."""
    return f"{PREFIX}:job:{{{job_id}}}:clicks:events"


def job_click_minutes(job_id: str) -> str:
    """Hash: the job's clicks by people per minute: ``<minute>`` (its start, unix s) all of them,
    ``<minute>:u`` first clicks of a row (the summary's time series). Kept as long as the job."""
    return f"{PREFIX}:job:{{{job_id}}}:clicks:minutes"


def job_conversions(job_id: str) -> str:
    """Hash: the job's conversions (``cluster.engagement.conversions``): ``events`` reported, ``conversions``
    attributed (``by_click``, ``by_delivery``), ``unattributed``, ``converters`` (rows with one),
    ``value`` (attributed value in millionths of ``measurement.currency``). Kept as long as the job."""
    return f"{PREFIX}:job:{{{job_id}}}:conversions"


def job_converted_rows(job_id: str) -> str:
    """Hash: per row with attributed conversions, their number (``<row>``) and value (``<row>:v``,
    millionths). Kept as long as the job."""
    return f"{PREFIX}:job:{{{job_id}}}:conversions:rows"


def job_conversion_ids(job_id: str) -> str:
    """Hash: event id -> the JSON answer its conversion got, so one sent again counts once and gets
    the same answer. Kept as long as the job."""
    return f"{PREFIX}:job:{{{job_id}}}:conversions:ids"


def job_conversion_events(job_id: str) -> str:
    """Stream: every conversion reported for the job (``event``, ``row``, ``at`` unix ms it happened,
    ``by`` click/delivery/empty, ``value`` millionths). Kept as long as the job."""
    return f"{PREFIX}:job:{{{job_id}}}:conversions:events"


def job_conversion_minutes(job_id: str) -> str:
    """Hash: attributed conversions per minute they happened (``<minute>``, its start in unix s;
    ``<minute>:v`` their value in millionths). Kept as long as the job."""
    return f"{PREFIX}:job:{{{job_id}}}:conversions:minutes"


def job_events_lock(job_id: str) -> str:
    """String: a random token while one process moves the job's event streams to Parquet, or reads
    them back (``cluster.engagement.events``). Expires after ten minutes (a holder that died)."""
    return f"{PREFIX}:job:{{{job_id}}}:events:lock"


def job_summary_lock(job_id: str) -> str:
    """String: a random token while one process takes the job's outcomes snapshot for its summary
    (``cluster.reports.summary``): another reader waits for it rather than read every row's ledger
    again. Expires 30 s after its holder last renewed it (a holder that died)."""
    return f"{PREFIX}:job:{{{job_id}}}:summary:lock"


def job_results(job_id: str) -> str:
    """String: JSON of the job's results as campaigns are compared (``cluster.reports.campaigns``):
    its summary's rates, money and per operator / variant figures, with the fingerprint of the
    counters they were read at; read again when those moved. Deleted with the job."""
    return f"{PREFIX}:job:{{{job_id}}}:results"


def job_conversion_keys(job_id: str) -> list[str]:
    """The keys a job's conversions are counted in, in the order ``cluster.engagement.conversions``' script
    takes them (one slot: the job's)."""
    return [
        job_conversions(job_id),
        job_converted_rows(job_id),
        job_conversion_ids(job_id),
        job_conversion_events(job_id),
        job_conversion_minutes(job_id),
    ]


def conversion_event(digest: str) -> str:
    """String: the job a conversion event id (sha256) was counted for, so the same id reported again
    (even naming the recipient another way) counts once. Expires after ``measurement.event_days``."""
    return f"{PREFIX}:conversion:{digest}"


def link(code: str) -> str:
    """String ``<job>|<row>``: whose tracked link *code* is (``ulak.links.reserve``). Expires with
    the link (``links.expire_days`` after the job's rows were prepared)."""
    return f"{PREFIX}:link:{code}"


LINK_SALT = f"{PREFIX}:links:salt"
"""String: the random salt the redirect service hashes client addresses with, made by the first
one to start (``SET NX``), shared by all. Never expires."""


def job_samples(job_id: str) -> str:
    """List: the job's recent progress samples (``t|submitted|parts_sent``), newest first, trimmed to
    the last few; rates are computed from them. Expires with the job's counters."""
    return f"{PREFIX}:job:{{{job_id}}}:samples"


def idempotency(key_digest: str) -> str:
    """String: the job a POST with this ``Idempotency-Key`` (sha256, per API key) created, and the
    request's fingerprint (``ulak.records.IdempotentRequest``). Expires after a day."""
    return f"{PREFIX}:idem:{key_digest}"


API_KEYS = f"{PREFIX}:apikeys"
"""Hash: sha256 of an API key's token -> JSON (id, name, scope, created). Never expires; the token
itself is never stored."""


def webhook_jobs(ledger: str) -> str:
    """Set: ids of jobs with a receipt webhook, in each ledger's slot (the ledger script checks it
    when a row's outcome is final). Written for every configured ledger when such a job is created."""
    return f"{PREFIX}:{tag(ledger)}:webhooks:jobs"


def webhook_outbox(ledger: str) -> str:
    """Stream: row outcomes of *ledger*'s rows to deliver to their jobs' webhooks (``job``, ``row``,
    ``outcome``); capped at about a million entries."""
    return f"{PREFIX}:{tag(ledger)}:webhooks:outbox"


WEBHOOK_STATES = f"{PREFIX}:webhooks:outbox"
"""Stream: jobs' final states to deliver to their webhooks (``job``, ``state``); capped at about a
million entries."""

WEBHOOK_CURSOR = f"{PREFIX}:webhooks:cursors"
"""Hash: per outbox stream key, the id of its last entry delivered (or given up on). Never expires."""


def ingest_credits(token: str) -> str:
    """List: rows the ingest driver has taken from one upload's read (one entry a block), which the read
    task pops to know how far ahead of the driver it is (``ingest.pacing``). Deleted when the upload
    has been read; expires after an hour if the driver died first."""
    return f"{PREFIX}:ingest:{token}:credits"


def bind_records(operator: str, bind: str, *, ledger: str) -> str:
    """Set: the send records (``bind_sends`` keys) of a bind's processes that may hold anything, so
    that a dead process's record is found by its bind's name (``cluster.send.pool``). Each process adds
    its record before its first write and removes it when the record is emptied; the pool removes a
    dead one's when it has settled it. No expiry (a member whose record expired reads as empty)."""
    return f"{PREFIX}:{tag(ledger)}:bind:{operator}:{bind}:records"


def bind_inbox(operator: str, bind: str, *, ledger: str) -> str:
    """List, one MessagePack array per receipt: receipts a bind has made durable before answering
    them and the ledger has not applied yet (``ulak.dispatch.inbox``). Appended to before each
    deliver_sm_resp, trimmed from the head by the ledger script that applies them, read by the next
    bind of that name when it starts. Short: a flush tick or two of receipts. No expiry (its entries
    are the only copy)."""
    return f"{PREFIX}:{tag(ledger)}:bind:{operator}:{bind}:inbox"


def bind_fence(operator: str, bind: str, *, ledger: str) -> str:
    """String ``generation:sequence[:try]``: the last ledger or inbox write of the process holding the
    bind's name (``ulak.dispatch.fence``), set in the same script as the write, with the number of
    the try that made it (a write whose answer was lost is known by it). Read to find the writes a
    Redis that lost its last seconds lost. No expiry (one short string a bind)."""
    return f"{PREFIX}:{tag(ledger)}:bind:{operator}:{bind}:fence"


def bind_sends(operator: str, bind: str, actor_id: str, *, ledger: str) -> str:
    """String, MessagePack arrays end to end: the parts one bind process may have put on the wire and
    whose outcome the ledger may not hold yet, appended before they are sent and rewritten to what is
    unsettled every 0.25 s (``ulak.dispatch.sendrecord``). Read and deleted by a job's runner when
    the process dies, deleted when the bind stops; expires a day after its last rewrite."""
    return f"{PREFIX}:{tag(ledger)}:bind:{operator}:{bind}:{actor_id}:sends"


def survey_index(reply_to: str) -> str:
    """Hash, number -> ``job|since|window seconds|kind``: the most recent survey that asked the
    number and whose answers come to *reply_to* (written when the job begins sending)."""
    return f"{PREFIX}:{{survey:{reply_to}}}:latest"


def job_survey_answers(job_id: str) -> str:
    """Hash, number -> JSON {answer, at, seconds, text, comments}: each respondent's first answer."""
    return f"{PREFIX}:job:{{{job_id}}}:survey:answers"


def job_survey_counts(job_id: str) -> str:
    """Hash: responses, yes, no, s0…s10 (scores), comments, unparsed, repeated."""
    return f"{PREFIX}:job:{{{job_id}}}:survey:counts"


def job_survey_replies(job_id: str) -> str:
    """List of JSON {number, at, text, answer}: the survey's free replies (a comment after an
    answer, or a reply that is none), the last 1000."""
    return f"{PREFIX}:job:{{{job_id}}}:survey:replies"


def job_survey_followups(job_id: str) -> str:
    """Stream of {number, text}: follow-ups to send, one per first answer, until a follow-up job
    takes them (``cluster.engagement.followups``)."""
    return f"{PREFIX}:job:{{{job_id}}}:survey:followups"


def job_survey_keys(job_id: str) -> tuple[str, ...]:
    return (
        job_survey_answers(job_id),
        job_survey_counts(job_id),
        job_survey_replies(job_id),
        job_survey_followups(job_id),
    )


FOLLOWUP_JOBS = f"{PREFIX}:followup-jobs"
"""Set: survey jobs that may have follow-ups waiting (a hint: each job's stream says)."""


WEBHOOK_ENDPOINTS = f"{PREFIX}:webhooks:endpoints"
"""Set: the ids of the webhook endpoints (URLs) that have a queue (``cluster.webhooks``)."""


def webhook_endpoint(endpoint: str) -> str:
    """Hash: an endpoint's url, delivered count, last error, attempts, failed_at."""
    return f"{PREFIX}:{{wh:{endpoint}}}:endpoint"


def webhook_queue(endpoint: str) -> str:
    """Stream of {secret_of, body}: the POSTs an endpoint is still to be sent, in order."""
    return f"{PREFIX}:{{wh:{endpoint}}}:queue"


def webhook_dead(endpoint: str) -> str:
    """Stream of {secret_of, body, error, at}: its deliveries that failed every attempt."""
    return f"{PREFIX}:{{wh:{endpoint}}}:dead"


# ------------------------------------------------------------------ send-time optimisation


def sendtime_bucket(bucket: int) -> str:
    """Hash: each number of this bucket (``ulak.sendtime.buckets_of``) -> its 24 hourly engagement
    counts, one byte each, in its own time zone. Never expires: the model of who engages when."""
    return f"{PREFIX}:sendtimes:{{{bucket}}}"


SENDTIME_PRIORS = f"{PREFIX}:{{sendtimes}}:priors"
"""Hash: ``<prefix>:<hour>`` -> engagements of the numbers with that prefix at that local hour (the
prior of numbers with little history). Never expires."""

SENDTIME_CURSORS = f"{PREFIX}:{{sendtimes}}:cursors"
"""Hash: ``<job id>:<kind>`` (clicks, conversions) or ``replies`` -> the last event id folded into
the model (``cluster.engagement.sendtimes``), so each is counted once. Never expires; a job's fields
go with the job."""

SENDTIME_STATS = f"{PREFIX}:{{sendtimes}}:stats"
"""Hash: the model's totals: ``events`` folded, ``refreshed`` (unix s of the last refresh)."""

SENDTIME_LOCK = f"{PREFIX}:{{sendtimes}}:lock"
"""String: held (with an expiry) by the one process folding engagement into the model."""
