"""Receipt webhooks: every final row outcome of a job with a ``webhook_url``, POSTed in signed batches.

The ledger script appends an outcome to its ledger's outbox stream (``ulak.keys.webhook_outbox``)
the moment a row's receipt is final, for jobs in that ledger's ``webhook_jobs``; the job's runner
appends its final state to ``WEBHOOK_STATES``. :class:`WebhookDeliverer` (run by one detached actor
per cluster) reads the streams, each in order, and POSTs each job's events as one JSON body::

    {"job_id": "…", "delivery": "<stream>/<first entry id>", "events": [
        {"type": "receipt", "row": 17, "outcome": "delivered"},
        {"type": "state", "state": "done"}]}

with ``X-Ulak-Timestamp`` and ``X-Ulak-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>"
keyed by the job's webhook secret>`` (returned once, when the job is created). A job's final state
comes after every outcome of its rows: the state stream is read first and its entries are delivered
only once every outcome stream has been read to its end after that (a job ends only when its rows'
outcomes are written, so they are all in hand by then).

**Per endpoint, in order, at least once.** :class:`WebhookDeliverer` first routes each job's batch
(and the replies processor each reply, ``cluster.engagement.replies``) to the queue of its endpoint (its URL:
``keys.webhook_queue``), then moves its cursor; a crash between the two routes the batch again (a
receiver may see a ``delivery`` id twice and should ignore the repeat). Each endpoint's queue is
delivered from its head, one call at a time (so in order), endpoints side by side in a thread
pool, each with its own backoff (0.5 s doubling to 60 s): an endpoint that is down holds up only
its own queue. After ``max_attempts`` failed calls its head goes to the endpoint's dead letters
(``keys.webhook_dead``, counted in the job's ``webhook_dead``) and the queue goes on; ``GET
/v1/webhooks`` shows every endpoint's queue, dead letters and last error, and ``POST
/v1/webhooks/{id}/replay`` puts its dead letters back at the end of its queue.

**Where calls may go.** A webhook URL is a request to make this cluster connect somewhere, so a URL
whose host is loopback, private, link-local (cloud metadata at 169.254.169.254), shared, reserved or
multicast is refused unless ``webhooks.allow_private_targets`` is set: when the job is submitted, and
again at every call, on the addresses the name resolves to then. The call connects to the address
that was checked (with the URL's host name for ``Host`` and TLS), so a name that resolves elsewhere
the second time (DNS rebinding) cannot redirect it. A call refused at send time drops its batch
(to the dead letters, as a failure would) instead of holding up the endpoint's queue.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from ulak import keys

log = structlog.get_logger("ulak.webhooks")


class WebhookRefused(ValueError):
    """The webhook URL's host is not one calls may go to (see the module docstring)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def checked_address(url: str, *, allow_private: bool) -> str:
    """The IP address to call *url* at: the first its host resolves to, after checking every one of
    them; :class:`WebhookRefused` if one is not public (unless *allow_private*) or none resolves."""
    parts = httpx.URL(url)
    host = parts.host
    if not host:
        raise WebhookRefused("the webhook URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookRefused(f"the webhook host {host[:100]} does not resolve ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private:
        for address in addresses:
            mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
            effective = mapped or address
            if not effective.is_global or effective.is_multicast:
                raise WebhookRefused(
                    f"the webhook host {host[:100]} resolves to {effective}, which is not a public "
                    "address; set webhooks.allow_private_targets to allow it"
                )
    return str(addresses[0])


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Ulak-Signature`` value for *body* sent at *timestamp*."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    if abs(time.time() - float(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def endpoint_id(url: str) -> str:
    """A webhook endpoint's id: its URL's digest (the queues are per URL, whoever's jobs use it)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def enqueue(client: Any, url: str, *, secret_of: str, body: dict[str, Any]) -> str:
    """Queue one POST *body* for *url*, its signing secret to be read from *secret_of* (a job's
    record: ``job:<id>``; or ``replies``: ``replies.webhook_secret_env``). Returns the endpoint."""
    endpoint = endpoint_id(url)
    pipe = client.pipeline(transaction=True)  # one slot: the endpoint's
    pipe.hset(keys.webhook_endpoint(endpoint), "url", url)
    pipe.xadd(
        keys.webhook_queue(endpoint),
        {"secret_of": secret_of, "body": json.dumps(body, separators=(",", ":"))},
    )
    pipe.execute()
    client.sadd(keys.WEBHOOK_ENDPOINTS, endpoint)
    return endpoint


@dataclass
class _Endpoint:
    attempts: int = 0
    retry_at: float = 0.0
    busy: bool = False


class WebhookDeliverer:
    """Routes the outboxes to one queue per endpoint (URL), in order, and delivers each queue on its
    own: one at a time per endpoint (so in order), endpoints side by side in a thread pool, each
    with its own backoff. An endpoint that keeps failing holds up only its own queue; after
    ``max_attempts`` its head goes to the endpoint's dead letters (visible and replayable in the
    API: ``/v1/webhooks``), counted in the job's ``webhook_dead``, and the queue goes on."""

    def __init__(
        self,
        client: Any,
        http: httpx.Client,
        *,
        ledgers: Sequence[str],
        batch: int = 1000,
        max_attempts: int = 8,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        allow_private: bool = False,
        idle: float = 0.2,
        workers: int = 8,
        secrets: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.http = http
        self.allow_private = allow_private
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.idle = idle
        self.secrets = secrets or {}  # secret_of -> secret, for those not in a job's record
        # Short names for the delivery ids: the ledger's name, or "state".
        self.streams = {keys.webhook_outbox(name): name for name in ledgers}
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")

    def _read(self, stream: str, cursors: dict[bytes, bytes]) -> list[tuple[bytes, dict[bytes, bytes]]]:
        start = cursors.get(stream.encode(), b"0-0").decode()
        found = self.client.xread({stream: start}, count=self.batch)  # one stream a call: one slot each
        if not found:
            return []
        entries: list[tuple[bytes, dict[bytes, bytes]]] = found[0][1]
        return entries

    def run_once(self) -> int:
        """Route what the outboxes have to the endpoints' queues, and start a delivery on every
        endpoint that is free and due; returns how many outbox entries were routed."""
        routed = self.route()
        started = self.dispatch()
        if not routed and not started:
            time.sleep(self.idle)
        return routed

    def route(self) -> int:
        cursors: dict[bytes, bytes] = self.client.hgetall(keys.WEBHOOK_CURSOR)
        states = self._read(keys.WEBHOOK_STATES, cursors)  # first: see the module docstring
        read = {stream: self._read(stream, cursors) for stream in self.streams}
        if any(len(entries) >= self.batch for entries in read.values()):
            states = []  # an outcome stream has more: its job's final state waits for it
        read[keys.WEBHOOK_STATES] = states
        if not any(read.values()):
            return 0
        by_job: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for stream, entries in read.items():
            name = self.streams.get(stream, "state")
            for entry_id, fields in entries:
                f = {k.decode(): v.decode() for k, v in fields.items()}
                event: dict[str, Any] = (
                    {"type": "state", "state": f["state"]}
                    if "state" in f
                    else {"type": "receipt", "row": int(f["row"]), "outcome": f["outcome"]}
                )
                by_job[f["job"]].append((f"{name}/{entry_id.decode()}", event))
        # Queued first, then the cursor moved: a crash between the two queues the batch again (a
        # receiver sees its delivery id twice), never loses it.
        for job, events in by_job.items():
            url = self.client.hget(keys.job(job), "webhook_url")
            if url is None:
                continue  # the job is gone: nothing to deliver to
            body = {"job_id": job, "delivery": events[0][0], "events": [e for _, e in events]}
            enqueue(self.client, url.decode(), secret_of=f"job:{job}", body=body)
        moved = {stream: entries[-1][0] for stream, entries in read.items() if entries}
        self.client.hset(keys.WEBHOOK_CURSOR, mapping=moved)
        return sum(len(entries) for entries in read.values())

    def dispatch(self) -> int:
        now = time.monotonic()
        started = 0
        for raw in self.client.smembers(keys.WEBHOOK_ENDPOINTS):
            endpoint = raw.decode()
            with self._lock:
                state = self._endpoints.setdefault(endpoint, _Endpoint())
                if state.busy or state.retry_at > now:
                    continue
                state.busy = True
            self._pool.submit(self._drain, endpoint, state)
            started += 1
        return started

    def _drain(self, endpoint: str, state: _Endpoint) -> None:
        """Deliver the endpoint's queue from its head until it is empty or a call fails."""
        try:
            queue = keys.webhook_queue(endpoint)
            url_raw = self.client.hget(keys.webhook_endpoint(endpoint), "url")
            if url_raw is None:
                return
            url = url_raw.decode()
            for _ in range(100):  # then give the pool back; the next round goes on
                head = self.client.xrange(queue, "-", "+", count=1)
                if not head:
                    return
                entry_id, fields = head[0]
                f = {k.decode(): v.decode() for k, v in fields.items()}
                result, error = self._post(url, f["secret_of"], f["body"])
                if result == "ok":
                    state.attempts = 0
                    self.client.xdel(queue, entry_id)
                    self.client.hincrby(keys.webhook_endpoint(endpoint), "delivered", 1)
                    continue
                state.attempts += 1
                self.client.hset(
                    keys.webhook_endpoint(endpoint),
                    mapping={
                        "last_error": error,
                        "attempts": state.attempts,
                        "failed_at": f"{time.time():.3f}",
                    },
                )
                if result == "refused" or state.attempts >= self.max_attempts:
                    self._dead(endpoint, entry_id, f, error)
                    state.attempts = 0
                    continue
                state.retry_at = time.monotonic() + min(
                    self.max_backoff, self.backoff * 2 ** (state.attempts - 1)
                )
                return
        except Exception:
            log.exception("webhook.endpoint_crashed", endpoint=endpoint)
            state.retry_at = time.monotonic() + 1.0
        finally:
            state.busy = False

    def _dead(self, endpoint: str, entry_id: bytes, fields: dict[str, str], error: str) -> None:
        """The head after max_attempts (or a target not allowed): to the dead letters, in order."""
        pipe = self.client.pipeline(transaction=True)  # one slot: the endpoint's
        pipe.xadd(keys.webhook_dead(endpoint), {**fields, "error": error[:500], "at": f"{time.time():.3f}"})
        pipe.xdel(keys.webhook_queue(endpoint), entry_id)
        pipe.execute()
        body = json.loads(fields["body"])
        job = fields["secret_of"].removeprefix("job:") if fields["secret_of"].startswith("job:") else None
        if job:
            self.client.hincrby(keys.job_counters(job), "webhook_dead", len(body.get("events", [])))
        log.error("webhook.dead_lettered", endpoint=endpoint, delivery=body.get("delivery"), error=error)

    def _secret(self, secret_of: str) -> str | None:
        if secret_of.startswith("job:"):
            raw = self.client.hget(keys.job(secret_of.removeprefix("job:")), "webhook_secret")
            return raw.decode() if isinstance(raw, bytes) else None
        return self.secrets.get(secret_of)

    def _post(self, url: str, secret_of: str, text: str) -> tuple[str, str]:
        """(``ok``, ""), (``failed``, why: try again later) or (``refused``, why: the target is not
        allowed, or there is no secret to sign with)."""
        secret = self._secret(secret_of)
        if secret is None:
            return "refused", f"no secret to sign with ({secret_of}: its job is gone, or not configured)"
        try:
            address = checked_address(url, allow_private=self.allow_private)
        except WebhookRefused as exc:
            return "refused", exc.message
        target = httpx.URL(url)
        body = text.encode()
        delivery = str(json.loads(text).get("delivery", ""))
        timestamp = f"{time.time():.0f}"
        headers = {
            "Content-Type": "application/json",
            "X-Ulak-Timestamp": timestamp,
            "X-Ulak-Signature": sign(secret, timestamp, body),
            "X-Ulak-Delivery": delivery,
            "Host": target.netloc.decode("ascii"),
        }
        try:
            response = self.http.post(
                target.copy_with(host=address),  # the address just checked, not a second lookup
                content=body,
                headers=headers,
                extensions={"sni_hostname": target.host},
            )
        except httpx.HTTPError as exc:
            log.warning("webhook.failed", url=url, error=f"{type(exc).__name__}: {exc}")
            return "failed", f"{type(exc).__name__}: {exc}"
        if response.status_code >= 300:
            log.warning("webhook.refused", url=url, status=response.status_code)
            return "failed", f"HTTP {response.status_code}"
        return "ok", ""


def endpoints(client: Any) -> list[dict[str, Any]]:
    """Every endpoint with its URL, queue, dead letters and last error (``GET /v1/webhooks``)."""
    ids = sorted(raw.decode() for raw in client.smembers(keys.WEBHOOK_ENDPOINTS))
    pipe = client.pipeline(transaction=False)  # one round trip for all (each endpoint has its slot)
    for endpoint in ids:
        pipe.hgetall(keys.webhook_endpoint(endpoint))
        pipe.xlen(keys.webhook_queue(endpoint))
        pipe.xlen(keys.webhook_dead(endpoint))
    found = pipe.execute()
    out = []
    for i, endpoint in enumerate(ids):
        meta, queued, dead = found[3 * i : 3 * i + 3]
        m = {k.decode(): v.decode() for k, v in meta.items()}
        out.append(
            {
                "id": endpoint,
                "url": m.get("url", ""),
                "queued": queued,
                "dead": dead,
                "delivered": int(m.get("delivered", 0)),
                "last_error": m.get("last_error") or None,
                "failed_at": float(m["failed_at"]) if m.get("failed_at") else None,
            }
        )
    return out


def dead_letters(client: Any, endpoint: str, *, limit: int = 100) -> list[dict[str, Any]]:
    entries = client.xrange(keys.webhook_dead(endpoint), "-", "+", count=limit)
    out = []
    for entry_id, fields in entries:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        body = json.loads(f["body"])
        out.append(
            {
                "id": entry_id.decode(),
                "delivery": body.get("delivery"),
                "job_id": body.get("job_id"),
                "events": len(body.get("events", [])),
                "error": f.get("error"),
                "at": float(f.get("at", 0)),
            }
        )
    return out


def replay(client: Any, endpoint: str) -> int:
    """Put the endpoint's dead letters back at the end of its queue, in order; returns how many."""
    entries = client.xrange(keys.webhook_dead(endpoint), "-", "+")
    if not entries:
        return 0
    pipe = client.pipeline(transaction=True)  # one slot: the endpoint's
    for entry_id, fields in entries:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        pipe.xadd(keys.webhook_queue(endpoint), {"secret_of": f["secret_of"], "body": f["body"]})
        pipe.xdel(keys.webhook_dead(endpoint), entry_id)
    pipe.execute()
    log.info("webhook.replayed", endpoint=endpoint, deliveries=len(entries))
    return len(entries)
