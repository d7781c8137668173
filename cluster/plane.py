"""The control plane's view of the cluster: make sure the binds run, create and steer jobs, read state.

The HTTP routes and the CLI call this; it holds no HTTP. It needs a running Ray (joined by the API
process) and the Redis URL. Binds and throttles are detached actors in the configured namespace, so
they, and the job actors, outlive a restart of the process that runs the API.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

import ray
import structlog

from cluster.engagement import events
from cluster.engagement.conversions import Conversions
from cluster.engagement.sendtimes import Folder
from cluster.jobs import legacy
from cluster.jobs.options import JobOptions, JobRefused, says_how_to_opt_out
from cluster.jobs.record import JobRecord
from cluster.jobs.states import ACTIVE, InvalidTransition, JobEvent, JobState, resumed_state
from cluster.jobs.store import JobStore
from cluster.reports.campaigns import Campaigns
from cluster.send.pool import BindMaker, BindPool
from cluster.webhooks import checked_address
from ingest.fetch import copy_limited, fetch
from ingest.prepare import check_upload
from ulak import keys, redisclient, sendtime
from ulak.jobfiles import JobDir, JobFiles
from ulak.records import IdempotentRequest
from ulak.settings import Settings, WebhooksConfig

log = structlog.get_logger("ulak.plane")
_N = TypeVar("_N", int, float)  # what a ledger hash summed over the ledgers counts

IDEMPOTENCY_TTL = 86400
REPLIES_SECRET_ENV = "ULAK_REPLIES_WEBHOOK_SECRET"  # the secret replies.webhook_url calls are signed with


@dataclass(frozen=True)
class Upload:
    """A campaign file a request carried: read from *file*, named *filename* by its sender."""

    file: BinaryIO
    filename: str | None


class ActorMaker(BindMaker, Protocol):
    """What makes the cluster's Ray actors (``actors.factories.RayActors``): the plane says which
    ones must run, the maker how (placement and restart policy, all in ``actors/``)."""

    def job(self, job_id: str, *, settings: Settings, redis_url: str, namespace: str) -> Any: ...

    def replies(self, *, settings: Settings, redis_url: str, namespace: str) -> Any: ...

    def webhooks(
        self,
        *,
        redis_url: str,
        config: WebhooksConfig,
        ledgers: list[str],
        namespace: str,
        secrets: dict[str, str] | None = None,
    ) -> Any: ...


class ControlPlane:
    def __init__(
        self, settings: Settings, *, redis_url: str, actors: ActorMaker, namespace: str | None = None
    ) -> None:
        self.settings = settings
        self.actors = actors
        self.redis_url = redis_url
        self.namespace = namespace or settings.ray.namespace
        self.client = redisclient.client(redis_url)
        self.aclient = redisclient.async_client(redis_url)  # the API's hot reads, on its event loop
        self.store = JobStore(self.client)
        self.files = JobFiles.configured(settings.jobs)
        self.pool = BindPool(settings, redis_url=redis_url, namespace=self.namespace, maker=actors)
        self.conversions = Conversions(self.client, settings, job_dir=self.job_dir)

    def close(self) -> None:
        self.client.close()
        self.pool.close()

    # ------------------------------------------------------------------------------------ binds

    def ensure_dispatch(self, *, bind_timeout: float = 0.0) -> None:
        """Start (or find) every operator's throttle and binds as detached actors (``BindPool``);
        optionally wait up to *bind_timeout* seconds for them to bind. Jobs an older Ulak left in
        Redis are moved into the current key layout first (``cluster.jobs.legacy``)."""
        legacy.migrate(self.client)
        self.pool.ensure(bind_timeout=bind_timeout)
        self.actors.webhooks(
            redis_url=self.redis_url,
            config=self.settings.webhooks,
            ledgers=self.settings.ledgers(),
            namespace=self.namespace,
            secrets={"replies": s} if (s := os.environ.get(REPLIES_SECRET_ENV)) else None,
        )
        self.actors.replies(redis_url=self.redis_url, settings=self.settings, namespace=self.namespace)
        # Jobs whose actor is gone (the whole cluster restarted) get a new one: they resume from Redis.
        for job_id in self.store.ids(limit=1000):
            if self.store.state(job_id) in ACTIVE:
                self._job_actor(job_id)

    def binds(self) -> dict[str, list[dict[str, Any]]]:
        """Each operator's binds as they describe themselves (or 'missing' when the actor is gone)."""
        return self.pool.describe()

    def throttles(self, *, timeout: float = 1.0) -> dict[str, dict[str, Any]]:
        """Each operator's ThrottleActor as it describes itself (rate, leases, waits): all asked at
        once, none waited for past *timeout* (one on a lost node answers ``{}``)."""
        found: dict[str, dict[str, Any]] = {op.name: {} for op in self.settings.operators}
        asked: dict[str, Any] = {}
        for op in self.settings.operators:
            with contextlib.suppress(ValueError):
                asked[op.name] = self.pool.throttle(op.name).describe.remote()
        if asked:
            ray.wait(list(asked.values()), num_returns=len(asked), timeout=timeout)
        for name, obj in asked.items():
            with contextlib.suppress(ray.exceptions.RayError):
                found[name] = dict(ray.get(obj, timeout=0))
        return found

    def sending(self) -> bool:
        """Whether a job is sending or draining now (its parts may be in the binds)."""
        busy = (JobState.SENDING, JobState.DRAINING)
        states = self.store.states(self.store.ids(limit=1000))
        return any(state in busy for state in states.values())

    def receipt_latency(self) -> dict[str, float]:
        """The receipt-latency histogram (``keys.receipt_latency``), summed over the operators."""
        return self._ledgers_summed(keys.receipt_latency, float)

    def receipt_stats(self) -> dict[str, int]:
        """Receipts held early, matched late and found unowned (``keys.receipt_stats``), summed
        over the ledgers."""
        return self._ledgers_summed(keys.receipt_stats, int)

    def _ledgers_summed(self, key: Callable[[str], str], number: Callable[[bytes], _N]) -> dict[str, _N]:
        """Each ledger's hash *key*, field by field summed as *number*s, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for name in self.settings.ledgers():
            pipe.hgetall(key(name))
        total: dict[str, _N] = {}
        for raw in pipe.execute():
            for k, v in raw.items():
                name = k.decode()
                total[name] = total[name] + number(v) if name in total else number(v)
        return total

    # ------------------------------------------------------------------------------------- jobs

    def check_upload(self, path: Path, options: JobOptions, *, filename: str) -> None:
        """Refuse a bad upload now (4xx), not minutes later (``ingest.prepare.check_upload``)."""
        check_upload(
            path,
            options.campaign_spec(),
            config=self.settings.ingest,
            operators=self.settings.operators,
            name=filename,
        )

    def check_webhook(self, url: str | None) -> None:
        """Refuse now a webhook URL whose calls would be refused later (``cluster.webhooks``)."""
        if url is not None:
            checked_address(url, allow_private=self.settings.webhooks.allow_private_targets)

    def check_options(self, options: JobOptions) -> None:
        """Refuse now what the job could not be sent with: its webhook URL (``check_webhook``), and a
        commercial job whose text does not say how to opt out (``replies.optout_instruction``; a
        text column's rows are checked one by one at ingest, ``no_optout_text``)."""
        self.check_webhook(options.webhook_url)
        if options.category != "commercial":
            return
        pattern = self.settings.replies.optout_instruction
        texts = [("template", options.template)] + [
            (f"variants[{i}].template", v.template) for i, v in enumerate(options.variants or ())
        ]
        for field, text in texts:
            if text is not None and not says_how_to_opt_out(text, pattern):
                raise JobRefused(
                    f"a commercial message must tell its recipient how to opt out, and the {field} does "
                    f'not (it should match {pattern!r}): add e.g. "Listeden çıkmak için RET yazıp '
                    f"4545'e gönderin\", or send it as category=informational if it is not commercial",
                    code="no_optout_text",
                    field=field,
                )

    def create_job(self, options: JobOptions, source: Upload | str, *, digest: str | None = None) -> str:
        """What ``POST /v1/jobs`` does once the request is read: check the options, stage the file
        (the upload copied, or the URI *source* names fetched, either bounded by ``ingest.max_file_bytes``),
        check its format and header (4xx before anything starts), record the job and start its
        actor. Returns the job's id (an earlier one's, for a repeated idempotency key). Whatever is
        refused leaves nothing behind."""
        self.check_options(options)
        limit = self.settings.ingest.max_file_bytes
        job_id, directory = self.new_job_dir()
        staging = directory.staging()  # the folder itself when local; the upload is checked here first
        try:
            if isinstance(source, Upload):
                filename = Path(source.filename or "upload.csv").name
                path = staging / ("upload" + Path(filename).suffix.lower())
                copy_limited(source.file, path, limit=limit, name=filename, field="file")
                named = f"upload:{filename}"
            else:
                api = self.settings.api
                path, filename = fetch(
                    source, root=api.uri_root, stores=api.object_stores, dest_dir=staging, max_bytes=limit
                )
                named = source
            self.check_upload(path, options, filename=filename)
            fingerprint = _fingerprint(options, path if isinstance(source, Upload) else None, source)
            upload = directory.adopt(path)
            job_id, _ = self.submit(
                job_id=job_id,
                directory=directory,
                upload=upload,
                filename=filename,
                source=named,
                options=options,
                idempotency_digest=digest,
                fingerprint=fingerprint,
            )
        except BaseException:
            directory.discard(staging)
            directory.remove()
            raise
        return job_id

    def new_job_dir(self) -> tuple[str, JobDir]:
        job_id = time.strftime("%Y%m%d") + "-" + secrets.token_hex(5)
        return job_id, self.files.new(job_id)

    def job_dir(self, record: JobRecord) -> JobDir:
        """The folder of the job whose record is *record*."""
        return self.files.dir(record.dir)

    def existing(self, idempotency_digest: str | None) -> IdempotentRequest | None:
        """The job a request with this idempotency key created, and what that request asked."""
        if idempotency_digest is None:
            return None
        found = self.client.get(keys.idempotency(idempotency_digest))
        return IdempotentRequest.read(found) if found is not None else None

    def submit(
        self,
        *,
        job_id: str,
        directory: JobDir,
        upload: str,
        filename: str,
        source: str,
        options: JobOptions,
        idempotency_digest: str | None = None,
        fingerprint: str = "",
        automatic: bool = False,
    ) -> tuple[str, bool]:
        """Record the job and start its actor; returns (job id, created). With an idempotency key
        already used by the same request (*fingerprint*), the earlier job is returned and this
        upload discarded; used by another request, :class:`JobRefused` (``idempotency_key_reused``):
        the client has a bug, and nothing new is sent. *automatic*: Ulak's own messages (follow-ups,
        confirmations), listed as jobs but not among the campaigns."""
        if idempotency_digest is not None:
            claim = IdempotentRequest(job_id, fingerprint).write()
            key = keys.idempotency(idempotency_digest)
            if not self.client.set(key, claim, nx=True, ex=IDEMPOTENCY_TTL):
                directory.remove()
                earlier = self.existing(idempotency_digest)
                assert earlier is not None
                if earlier.fingerprint and earlier.fingerprint != fingerprint:
                    raise JobRefused(
                        f"this Idempotency-Key was used by another request, which created job "
                        f"{earlier.job_id}: send a new key for a new campaign, or the same options "
                        "and file to get that job again",
                        code="idempotency_key_reused",
                        field="Idempotency-Key",
                    )
                return earlier.job_id, False
        self.store.create(job_id, options=options, source=source, directory=directory, automatic=automatic)
        self.store.update(job_id, upload=upload, filename=filename)
        if options.webhook_url is not None:
            self.store.update(
                job_id, webhook_url=options.webhook_url, webhook_secret=secrets.token_urlsafe(24)
            )
            pipe = self.client.pipeline(transaction=False)  # each ledger's script checks its own
            for name in self.settings.ledgers():
                pipe.sadd(keys.webhook_jobs(name), job_id)
            pipe.execute()
        self._job_actor(job_id)
        log.info("job.submitted", job_id=job_id, source=source)
        return job_id, True

    def webhook_secret(self, job_id: str) -> str | None:
        """The secret the job's webhook calls are signed with (shown to whoever created the job)."""
        secret = self.client.hget(keys.job(job_id), "webhook_secret")
        return secret.decode() if isinstance(secret, bytes) else None

    def _job_actor(self, job_id: str) -> Any:
        return self.actors.job(
            job_id, settings=self.settings, redis_url=self.redis_url, namespace=self.namespace
        )

    def purge(self, *, older_than_days: float | None = None, dry_run: bool = False) -> list[str]:
        """Delete the jobs that ended more than *older_than_days* ago (default ``jobs.retention_days``;
        nothing when that is unset), and without *older_than_days* the previews (dry runs) that ended
        more than ``jobs.preview_retention_hours`` ago: their Redis keys and their directory with the
        reports. Returns their ids."""
        days = self.settings.jobs.retention_days if older_than_days is None else older_than_days
        ids = self.store.ended_before(time.time() - days * 86400) if days is not None else []
        hours = self.settings.jobs.preview_retention_hours
        if older_than_days is None and hours is not None:  # previews go sooner (after a day)
            previews = self.store.ended_before(time.time() - hours * 3600, previews=True)
            ids = [*ids, *sorted(set(previews) - set(ids))]
        if not dry_run:
            for job_id in ids:
                directory = self.client.hget(keys.job(job_id), "dir")
                self.store.delete(job_id, ledgers=self.settings.ledgers())
                if isinstance(directory, bytes):
                    try:
                        self.files.dir(directory.decode()).remove()
                    except OSError as exc:  # the records are gone; the folder is left, and said so
                        folder = directory.decode()
                        log.warning("job.folder_left", job_id=job_id, folder=folder, error=str(exc))
            if ids:
                Folder(self.client, self.settings).forget(ids)
                log.info("jobs.purged", jobs=len(ids), older_than_days=days)
        return ids

    def campaigns(self, *, limit: int = 20) -> list[dict[str, Any]]:
        """The last *limit* campaigns with their summaries' figures (``cluster.reports.campaigns``)."""
        return Campaigns(self.store, self.settings, job_dir=self.job_dir).recent(limit=limit)

    def refresh_send_times(self) -> dict[str, int] | None:
        """Fold the engagement since the last refresh into the send-time model (``ulak.sendtime``);
        None when another process is folding right now."""
        return Folder(self.client, self.settings).refresh()

    def send_time_model(self) -> dict[str, Any]:
        """What the send-time model holds: engagement folded, when, and the audience's hours."""
        stats: dict[bytes, bytes] = self.client.hgetall(keys.SENDTIME_STATS)  # type: ignore[assignment]
        priors = sendtime.Priors.read(self.client, digits=self.settings.send_times.prefix_digits)
        refreshed = stats.get(b"refreshed")
        return {
            "events": int(stats.get(b"events", 0)),
            "refreshed_at": float(refreshed) if refreshed else None,
            "prefixes": len(priors.by_prefix),
            "audience_hours": [int(n) for n in priors.audience.tolist()],
        }

    def compact_events(self, *, older_than: float = 3600.0) -> dict[str, int]:
        """Move every job's click and conversion events older than *older_than* seconds from Redis
        to Parquet in its folder (``cluster.engagement.events``); returns how many moved in all."""
        moved: dict[str, int] = {}
        for job_id in self.store.ids(limit=1_000_000):
            pipe = self.client.pipeline(transaction=True)  # one slot: the job's
            pipe.hget(keys.job(job_id), "dir")
            pipe.xlen(keys.job_click_events(job_id))
            pipe.xlen(keys.job_conversion_events(job_id))
            directory, clicks, conversions = pipe.execute()
            if directory is None or not (clicks or conversions):
                continue
            found = events.compact(
                self.client, job_id, self.files.dir(directory.decode()), older_than=older_than
            )
            for kind, n in found.items():
                moved[kind] = moved.get(kind, 0) + n
        if any(moved.values()):
            log.info("events.compacted", **moved)
        return moved

    def pause(self, job_id: str, *, timeout: float = 2.0) -> bool:
        """Pause the job; a sending job's pause returns once its runner has taken every queued
        part back from the binds (the parts already on the wire are answered as usual, and a
        message whose first part went out is finished). Returns False if the runner did not answer
        within *timeout* (it does at its next poll, ``JobRunner.poll``; a runner that died is
        replaced by the supervisor, which takes the job back before anything else)."""
        was = self.store.transition(job_id, JobEvent.PAUSE)
        if was is not JobState.SENDING:
            return True  # nothing was handed to the binds yet
        pause = self.store.pause_number(job_id)
        deadline = time.monotonic() + timeout
        while self.store.taken_back(job_id) < pause:
            if time.monotonic() > deadline:
                log.warning("job.pause_unanswered", job_id=job_id, seconds=timeout)
                return False
            time.sleep(0.02)
        return True

    def resume(self, job_id: str) -> None:
        record = self.store.record(job_id)
        if record.state is not JobState.PAUSED:
            raise InvalidTransition(f"job {job_id} is {record.state}, not paused", record.state)
        self.store.transition(job_id, JobEvent.RESUME, to=resumed_state(record.paused_from))

    def cancel(self, job_id: str) -> None:
        self.store.transition(job_id, JobEvent.CANCEL)


def _fingerprint(options: JobOptions, path: Path | None, source: Upload | str) -> str:
    """What a keyed request asked, as a digest: its options, and its file's bytes (an upload) or
    its URI (what it names may change; the URI is what the client sent)."""
    digest = hashlib.sha256(options.model_dump_json(exclude_none=True).encode())
    if path is None:
        digest.update(b"\0uri:" + str(source).encode())
        return digest.hexdigest()[:32]
    digest.update(b"\0file:")
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:32]
