"""Every Redis key Ulak uses, named in one place (in the manner of arq's ``constants.py``).

Each function documents what its key holds and when it expires. Nothing else in the code base builds
a key string by hand; Lua scripts receive these names (or the templates below) as arguments.
"""

from __future__ import annotations

PREFIX = "ulak"


def job(job_id: str) -> str:
    """Hash: the job record (state, timestamps, options). Lives as long as the job is kept."""
    return f"{PREFIX}:job:{job_id}"


def job_counters(job_id: str) -> str:
    """Hash: the job's counters (see ``ulak.dispatch.ledger.COUNTERS``), in messages and parts."""
    return f"{PREFIX}:job:{job_id}:counters"


def job_rows(job_id: str) -> str:
    """Hash: per row, its state (``<row>``); for a multi-part row also parts acknowledged
    (``<row>:a``), parts delivered (``<row>:d``), its first negative receipt (``<row>:n``) and its
    outcome (``<row>:o``; a single-part row's outcome is its part's receipt in :func:`job_parts`)."""
    return f"{PREFIX}:job:{job_id}:rows"


def job_parts(job_id: str) -> str:
    """Hash: per part (``<row>:<part>``) its submit state (s, a, f, u); for the report, its message id
    and ack time (``<row>:<part>:m`` = ``id|unix_ms``), failure status (``<row>:<part>:e``) and receipt
    (``<row>:<part>:r`` = ``status|error|unix_ms``). Kept as long as the job."""
    return f"{PREFIX}:job:{job_id}:parts"


# Templates for the Lua ledger script, which handles events of many jobs in one call: ``%s`` is the job id.
JOB_COUNTERS_TEMPLATE = f"{PREFIX}:job:%s:counters"
JOB_ROWS_TEMPLATE = f"{PREFIX}:job:%s:rows"
JOB_PARTS_TEMPLATE = f"{PREFIX}:job:%s:parts"


# The ledger script turns a message id's key into its early receipt's key by swapping these prefixes.
MESSAGE_ID_PREFIX = f"{PREFIX}:msg:"
EARLY_RECEIPT_PREFIX = f"{PREFIX}:early:"


def message_id(smsc: str, normalized_id: str) -> str:
    """String ``job|row|part|parts|acked_ms[|a]``: which part an SMSC message id belongs to (``a``: a
    single-part row that was acked then, so its receipt settles it without reading the row). Written
    when the submit_sm_resp arrives; expires after the validity period plus a day (receipts cannot
    come later)."""
    return f"{MESSAGE_ID_PREFIX}{smsc}:{normalized_id}"


def early_receipt(smsc: str, normalized_id: str) -> str:
    """String ``status|error``: a receipt that arrived before its submit_sm_resp was recorded. Matched
    (and deleted) when the id is recorded; expires with the message-id map's TTL."""
    return f"{EARLY_RECEIPT_PREFIX}{smsc}:{normalized_id}"


EARLY_RECEIPTS_HELD = f"{PREFIX}:early-held"
"""Hash: per SMSC identity, how many early receipts may still be held (+1 when one is held, -1 when it
is matched). Its TTL is renewed with each one held, so it expires with the last of them. An ack looks
for an early receipt of its id only while this says there may be one (saves a read per message)."""

RECEIPT_STATS = f"{PREFIX}:receipts:stats"
"""Hash: receipts held early, matched late, and those that matched nothing yet. Never expires."""

RECEIPT_LATENCY = f"{PREFIX}:receipts:latency"
"""Hash: receipt latency (a part's ack to its final receipt) as bucket counts: field = the bucket's upper
bound in seconds (``1``, ``5``, … ``86400``, ``+Inf``), plus ``sum`` in seconds. Never expires."""

OPTOUT = f"{PREFIX}:optout"
"""Set: E.164 numbers that opted out. Never expires."""


JOBS = f"{PREFIX}:jobs"
"""Sorted set: every job id, scored by creation time (unix seconds). Entries live as long as the job."""


def job_samples(job_id: str) -> str:
    """List: the job's recent progress samples (``t|submitted|parts_sent``), newest first, trimmed to
    the last few; rates are computed from them. Expires with the job's counters."""
    return f"{PREFIX}:job:{job_id}:samples"


def idempotency(key_digest: str) -> str:
    """String: the job id a POST with this ``Idempotency-Key`` (sha256, per API key) created.
    Expires after a day."""
    return f"{PREFIX}:idem:{key_digest}"


API_KEYS = f"{PREFIX}:apikeys"
"""Hash: sha256 of an API key's token -> JSON (id, name, scope, created). Never expires; the token
itself is never stored."""


WEBHOOK_JOBS = f"{PREFIX}:webhooks:jobs"
"""Set: ids of jobs with a receipt webhook (the ledger script checks it when a row's outcome is final)."""

WEBHOOK_OUTBOX = f"{PREFIX}:webhooks:outbox"
"""Stream: webhook events to deliver (``job``, and ``row`` + ``outcome``, or ``state``); capped at about
a million entries."""

WEBHOOK_CURSOR = f"{PREFIX}:webhooks:cursor"
"""String: the id of the last outbox entry delivered (or given up on). Never expires."""


def ingest_credits(token: str) -> str:
    """List: rows the ingest driver has taken from one upload's read (one entry a block), which the read
    task pops to know how far ahead of the driver it is (``ingest.pacing``). Deleted when the upload
    has been read; expires after an hour if the driver died first."""
    return f"{PREFIX}:ingest:{token}:credits"


def bind_records(operator: str, bind: str) -> str:
    """Set: the send records (``bind_sends`` keys) of a bind's processes that may hold anything, so
    that a dead process's record is found by its bind's name (``cluster.pool``). Each process adds
    its record before its first write and removes it when the record is emptied; the pool removes a
    dead one's when it has settled it. No expiry (a member whose record expired reads as empty)."""
    return f"{PREFIX}:bind:{operator}:{bind}:records"


def bind_inbox(operator: str, bind: str) -> str:
    """List, one MessagePack array per receipt: receipts a bind has made durable before answering
    them and the ledger has not applied yet (``ulak.dispatch.inbox``). Appended to before each
    deliver_sm_resp, trimmed from the head by the ledger script that applies them, read by the next
    bind of that name when it starts. Short: a flush tick or two of receipts. No expiry (its entries
    are the only copy)."""
    return f"{PREFIX}:bind:{operator}:{bind}:inbox"


def bind_fence(operator: str, bind: str) -> str:
    """String ``generation:sequence``: the last ledger or inbox write of the process holding the
    bind's name (``ulak.dispatch.fence``), set in the same script as the write. Read to find the
    writes a Redis that lost its last seconds lost. No expiry (one short string a bind)."""
    return f"{PREFIX}:bind:{operator}:{bind}:fence"


def bind_sends(operator: str, bind: str, actor_id: str) -> str:
    """String, MessagePack arrays end to end: the parts one bind process may have put on the wire and
    whose outcome the ledger may not hold yet, appended before they are sent and rewritten to what is
    unsettled every 0.25 s (``ulak.dispatch.sendrecord``). Read and deleted by a job's runner when
    the process dies, deleted when the bind stops; expires a day after its last rewrite."""
    return f"{PREFIX}:bind:{operator}:{bind}:{actor_id}:sends"
