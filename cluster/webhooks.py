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
outcomes are written, so they are all in hand by then). Delivery is at least
once: a failed batch is retried with backoff (a receiver may see a ``delivery`` id twice and should
ignore the repeat); after ``max_attempts`` the batch's events for the failing job are dropped and
counted in the job's ``webhook_dropped`` counter.

**Where calls may go.** A webhook URL is a request to make this cluster connect somewhere, so a URL
whose host is loopback, private, link-local (cloud metadata at 169.254.169.254), shared, reserved or
multicast is refused unless ``webhooks.allow_private_targets`` is set: when the job is submitted, and
again at every call, on the addresses the name resolves to then. The call connects to the address
that was checked (with the URL's host name for ``Host`` and TLS), so a name that resolves elsewhere
the second time (DNS rebinding) cannot redirect it. A call refused at send time drops its batch
(counted in ``webhook_dropped``) instead of holding up other jobs' deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import httpx
import redis
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


class WebhookDeliverer:
    def __init__(
        self,
        client: redis.Redis,
        http: httpx.Client,
        *,
        ledgers: Sequence[str],
        batch: int = 1000,
        max_attempts: int = 8,
        backoff: float = 0.5,
        allow_private: bool = False,
        idle: float = 0.2,
    ) -> None:
        self.client = client
        self.http = http
        self.allow_private = allow_private
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.idle = idle
        # Short names for the delivery ids: the ledger's name, or "state".
        self.streams = {keys.webhook_outbox(name): name for name in ledgers}
        self._attempts = 0
        self._retry_at = 0.0

    def _read(self, stream: str, cursors: dict[bytes, bytes]) -> list[tuple[bytes, dict[bytes, bytes]]]:
        start = cursors.get(stream.encode(), b"0-0").decode()
        found = self.client.xread({stream: start}, count=self.batch)  # one stream a call: one slot each
        if not found:
            return []
        entries: list[tuple[bytes, dict[bytes, bytes]]] = found[0][1]  # type: ignore[index,assignment]
        return entries

    def run_once(self) -> int:
        """Deliver the next batch of outbox entries; returns how many entries were settled."""
        if time.monotonic() < self._retry_at:
            time.sleep(min(1.0, self._retry_at - time.monotonic()))
            return 0
        cursors: dict[bytes, bytes] = self.client.hgetall(keys.WEBHOOK_CURSOR)  # type: ignore[assignment]
        states = self._read(keys.WEBHOOK_STATES, cursors)  # first: see the module docstring
        read = {stream: self._read(stream, cursors) for stream in self.streams}
        if any(len(entries) >= self.batch for entries in read.values()):
            states = []  # an outcome stream has more: its job's final state waits for it
        read[keys.WEBHOOK_STATES] = states
        if not any(read.values()):
            time.sleep(self.idle)
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
        results = {job: self._post(job, events) for job, events in by_job.items()}
        if "failed" in results.values():
            self._attempts += 1
            if self._attempts < self.max_attempts:
                self._retry_at = time.monotonic() + self.backoff * 2 ** (self._attempts - 1)
                return 0  # the whole batch is read again then: a refused job's drop is counted below, once
        for job, result in results.items():
            if result != "ok":  # refused, or failed max_attempts times: dropped as the cursor moves on
                self.client.hincrby(keys.job_counters(job), "webhook_dropped", len(by_job[job]))
                log.error("webhook.dropped", job_id=job, events=len(by_job[job]), reason=result)
        self._attempts = 0
        moved = {stream: entries[-1][0] for stream, entries in read.items() if entries}
        self.client.hset(keys.WEBHOOK_CURSOR, mapping=moved)  # type: ignore[arg-type]
        return sum(len(entries) for entries in read.values())

    def _post(self, job_id: str, events: list[tuple[str, dict[str, Any]]]) -> str:
        """``ok``, ``failed`` (try again later) or ``refused`` (the target is not allowed: drop)."""
        raw: list[bytes | None] = self.client.hmget(  # type: ignore[assignment]
            keys.job(job_id), ["webhook_url", "webhook_secret"]
        )
        if raw[0] is None or raw[1] is None:
            return "ok"  # the job is gone: nothing to deliver to
        url, secret = raw[0].decode(), raw[1].decode()
        try:
            address = checked_address(url, allow_private=self.allow_private)
        except WebhookRefused as exc:
            log.error("webhook.refused_target", job_id=job_id, error=exc.message, events=len(events))
            return "refused"
        target = httpx.URL(url)
        body = json.dumps(
            {"job_id": job_id, "delivery": events[0][0], "events": [e for _, e in events]},
            separators=(",", ":"),
        ).encode()
        timestamp = f"{time.time():.0f}"
        headers = {
            "Content-Type": "application/json",
            "X-Ulak-Timestamp": timestamp,
            "X-Ulak-Signature": sign(secret, timestamp, body),
            "X-Ulak-Delivery": events[0][0],
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
            log.warning("webhook.failed", job_id=job_id, error=f"{type(exc).__name__}: {exc}")
            return "failed"
        if response.status_code >= 300:
            log.warning("webhook.refused", job_id=job_id, status=response.status_code)
            return "failed"
        return "ok"
