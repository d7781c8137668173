"""/v1/jobs: submit a campaign, follow it, steer it, read its reports."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import pyarrow as pa
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import Key, Plane, Views, WriteKey
from api.errors import ApiError, validation_error
from api.schemas import ErrorBody, JobCreated, JobList, JobUri, JobView, Links, Purged, PurgeRequest
from cluster.engagement import events
from cluster.jobs.options import JobOptions
from cluster.jobs.record import JobRecord
from cluster.jobs.states import JobState
from cluster.plane import ControlPlane, Upload
from cluster.reports.report import (
    REPORT_SCHEMA,
    as_csv,
    as_parquet,
    rejected_batches,
    rejected_schema,
    report_batches,
)
from cluster.reports.snapshot import current_outcomes
from cluster.reports.summary import BUCKETS, summarize
from cluster.reports.summary import as_csv as summary_csv
from ingest.errors import FileTooLarge

# Options only Ulak itself sets (opt-out confirmations skip the opt-out lists): never a client's.
_INTERNAL = frozenset({"confirms_optout"})

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no or unknown API key"},
    404: {"model": ErrorBody, "description": "no such job"},
}

_UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        **{
                            name: {"type": "string", "description": field.description or ""}
                            for name, field in JobOptions.model_fields.items()
                            if name not in _INTERNAL
                        },
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/JobUri"}},
        },
    }
}

_FORM_FIELDS = set(JobOptions.model_fields) - _INTERNAL


def _links(job_id: str) -> Links:
    base = f"/v1/jobs/{job_id}"
    return Links(
        self=base,
        events=f"{base}/events",
        report=f"{base}/report",
        summary=f"{base}/summary",
        rejected=f"{base}/rejected",
        pause=f"{base}/pause",
        resume=f"{base}/resume",
        cancel=f"{base}/cancel",
    )


def _created(plane: ControlPlane, job_id: str) -> JobCreated:
    return JobCreated(
        id=job_id,
        state=plane.store.state(job_id).value,
        links=_links(job_id),
        webhook_secret=plane.webhook_secret(job_id),
    )


def _options(values: dict[str, Any]) -> JobOptions:
    try:
        return JobOptions.model_validate(values)
    except ValidationError as exc:
        raise validation_error(exc, code="invalid_options") from None


def _form_options(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in form.multi_items():
        if name == "file":
            continue
        if name not in _FORM_FIELDS:
            raise ApiError(422, "invalid_options", f"{name}: unknown option", field=name)
        if isinstance(value, UploadFile):
            raise ApiError(422, "invalid_options", f"{name}: expected text, got a file", field=name)
        if name == "operators":
            values.setdefault("operators", []).extend(v.strip() for v in value.split(",") if v.strip())
        elif name == "utm":  # utm_source=sms&utm_campaign=kasim
            values["utm"] = dict(parse_qsl(value, keep_blank_values=True))
        elif name == "variants":  # [{"name": "A", "template": "..."}, {"name": "B", "sender": "..."}]
            try:
                values["variants"] = json.loads(value)
            except ValueError:
                raise ApiError(
                    422,
                    "invalid_options",
                    'variants: expected JSON, e.g. [{"name": "A"}, {"name": "B", "template": "..."}]',
                    field="variants",
                ) from None
        elif name == "survey":  # nps, yes_no, or {"kind": "nps", "reply_to": "4545", "window_hours": 48}
            try:
                values["survey"] = json.loads(value) if value.lstrip().startswith("{") else {"kind": value}
            except ValueError:
                raise ApiError(
                    422,
                    "invalid_options",
                    'survey: expected yes_no, nps or JSON, e.g. {"kind": "nps", "reply_to": "4545"}',
                    field="survey",
                ) from None
        elif value != "":
            values[name] = value
    return values


def _watch_multipart_end(request: Request, content_type: str) -> Callable[[], bool]:
    """Whether the multipart body, once read, ended with its closing boundary. The parser accepts a
    body cut short and drops the part it was in, which would otherwise read as 'no file sent'."""
    _, _, boundary = content_type.partition("boundary=")
    closing = b"--" + boundary.split(";")[0].strip().strip('"').encode("latin-1") + b"--"
    tail = bytearray()
    keep = len(closing) + 8
    stream = request.stream

    async def watched() -> AsyncIterator[bytes]:
        async for chunk in stream():
            tail[:] = (bytes(tail) + chunk[-keep:])[-keep:]  # never a copy of the whole chunk
            yield chunk

    request.stream = watched  # type: ignore[method-assign,assignment]
    return lambda: closing in tail


@router.post(
    "",
    status_code=202,
    response_model=JobCreated,
    summary="Submit a campaign (multipart file upload, or JSON naming a URI)",
    openapi_extra=_UPLOAD_DOC,
    responses={
        **_ERRORS,
        403: {"model": ErrorBody},
        413: {"model": ErrorBody},
        415: {"model": ErrorBody},
        422: {"model": ErrorBody},
    },
)
async def create_job(
    request: Request,
    plane: Plane,
    key: WriteKey,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JobCreated:
    """Starts a job: 202 with its id and links. Ingest runs in the cluster; the upload's format and
    header are checked first (4xx before anything starts). A repeated ``Idempotency-Key`` (per API key,
    kept a day) returns the job the first request created; with other options or another file it is
    a 422 ``idempotency_key_reused`` naming that job."""
    digest = hashlib.sha256(f"{key.id}:{idempotency_key}".encode()).hexdigest() if idempotency_key else None
    earlier = await run_in_threadpool(plane.existing, digest)
    if earlier is not None and not earlier.fingerprint:  # a key kept before requests were fingerprinted
        return _created(plane, earlier.job_id)
    limit = plane.settings.ingest.max_file_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + (1 << 20):
        raise FileTooLarge(f"the upload exceeds {limit:,} bytes (ingest.max_file_bytes)", field="file")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        options, upload = await _read_form(request, content_type)
        try:
            job_id = await run_in_threadpool(
                lambda: plane.create_job(options, Upload(upload.file, upload.filename), digest=digest)
            )
        finally:
            await upload.close()
    elif content_type.startswith("application/json"):
        options, uri = await _read_uri(request)
        job_id = await run_in_threadpool(lambda: plane.create_job(options, uri, digest=digest))
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send multipart/form-data with a 'file' field, or application/json with a 'uri'",
        )
    return _created(plane, job_id)


async def _read_form(request: Request, content_type: str) -> tuple[JobOptions, UploadFile]:
    """The options and the file of a multipart upload (400 if the body was cut short)."""
    complete = _watch_multipart_end(request, content_type)
    form = await request.form(max_files=1, max_fields=len(_FORM_FIELDS) + 10)
    upload = form.get("file")
    if not complete():
        raise ApiError(
            400,
            "truncated_upload",
            "the multipart body ended before its closing boundary: the upload was cut short; send it again",
            field="file",
        )
    if not isinstance(upload, UploadFile):
        raise ApiError(422, "missing_file", "send the campaign as the multipart field 'file'", field="file")
    try:
        return _options(_form_options(form)), upload
    except BaseException:
        await upload.close()
        raise


async def _read_uri(request: Request) -> tuple[JobOptions, str]:
    """The options and the URI of a JSON request."""
    try:
        raw = await request.json()
    except ValueError:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ApiError(422, "invalid_options", "the body must be a JSON object")
    for name in sorted(_INTERNAL & set(raw)):
        raise ApiError(422, "invalid_options", f"{name}: unknown option", field=name)
    try:
        spec = JobUri.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, code="invalid_options") from None
    return JobOptions.model_validate(spec.model_dump(exclude={"uri"})), spec.uri


@router.post("/purge", response_model=Purged, responses={**_ERRORS, 403: {"model": ErrorBody}})
def purge_jobs(plane: Plane, key: WriteKey, spec: PurgeRequest | None = None) -> Purged:
    """Delete the jobs that ended more than ``older_than_days`` ago (default ``jobs.retention_days``):
    their records, figures and reports. The API also does this every hour."""
    spec = spec or PurgeRequest()
    ids = plane.purge(older_than_days=spec.older_than_days, dry_run=spec.dry_run)
    return Purged(purged=ids, dry_run=spec.dry_run)


@router.get("", response_model=JobList, responses=_ERRORS)
def list_jobs(
    plane: Plane,
    key: Key,
    *,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        float | None, Query(allow_inf_nan=False, description="paging cursor from 'next'")
    ] = None,
    kind: Annotated[
        Literal["all", "campaigns", "previews"],
        Query(
            description="campaigns: users' jobs that send (not previews, not the follow-ups, confirmations "
            "and keyword answers Ulak sends by itself); previews: dry runs (deleted a day after they end)"
        ),
    ] = "all",
) -> JobList:
    """Jobs, newest first."""
    ids = plane.store.ids(state=state, limit=limit + 1, before=before, kind=kind)
    page = ids[:limit]
    nxt = str(plane.store.created_at(page[-1])) if len(ids) > limit and page else None
    return JobList(jobs=[JobView.model_validate(plane.store.view(i)) for i in page], next=nxt)


@router.get("/{job_id}", response_model=JobView, responses=_ERRORS)
async def get_job(job_id: str, views: Views, key: Key) -> dict[str, Any]:
    """State, counts (which add up), rates over the last 10 s, ETA, per-operator plan, times. Read at
    most ``api.view_max_age`` (0.1 s) before (asks for one job share a read: ``api.views``)."""
    return await views.get(job_id)


@router.post("/{job_id}/pause", response_model=JobView, responses={**_ERRORS, 409: {"model": ErrorBody}})
def pause_job(job_id: str, plane: Plane, views: Views, key: WriteKey) -> dict[str, Any]:
    """Stop sending: answers once the binds hold none of the job's queued parts (within a poll of
    its runner; messages already started are finished); resume continues."""
    plane.pause(job_id)
    views.forget(job_id)
    return plane.store.view(job_id)


@router.post("/{job_id}/resume", response_model=JobView, responses={**_ERRORS, 409: {"model": ErrorBody}})
def resume_job(job_id: str, plane: Plane, views: Views, key: WriteKey) -> dict[str, Any]:
    plane.resume(job_id)
    views.forget(job_id)
    return plane.store.view(job_id)


@router.post("/{job_id}/cancel", response_model=JobView, responses={**_ERRORS, 409: {"model": ErrorBody}})
def cancel_job(job_id: str, plane: Plane, views: Views, key: WriteKey) -> dict[str, Any]:
    """Send nothing more: what was submitted stays recorded, the rest becomes ``cancelled``."""
    plane.cancel(job_id)
    views.forget(job_id)
    return plane.store.view(job_id)


def _unprepared(job_id: str, record: JobRecord) -> ApiError:
    state = record.state
    if state.terminal:
        code = record.error.get("code") if record.error else None
        why = f" ({code}: see the job's error)" if code else ""
        return ApiError(
            409,
            "no_report",
            f"job {job_id} {state.value} before its rows were prepared{why}: it has no report",
        )
    return ApiError(409, "not_ready", f"job {job_id} is {state.value}: its rows are not prepared yet")


def _stream(batches: Iterator[Any], schema: pa.Schema, fmt: str, filename: str) -> StreamingResponse:
    if fmt == "parquet":
        chunks, media = as_parquet(batches, schema), "application/vnd.apache.parquet"
    else:
        chunks, media = as_csv(batches, schema), "text/csv; charset=utf-8"
    return StreamingResponse(
        iterate_in_threadpool(chunks),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'},
    )


@router.get(
    "/{job_id}/report",
    responses={**_ERRORS, 200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
def job_report(
    job_id: str, plane: Plane, key: Key, format: Literal["csv", "parquet"] = "csv"
) -> StreamingResponse:
    """Every accepted row: number, operator, parts, submit status, receipt, error, message ids, times."""
    record = plane.store.record(job_id)
    if not record.prepared:
        raise _unprepared(job_id, record)
    directory = plane.job_dir(record)

    def batches() -> Iterator[pa.RecordBatch]:
        # Right after a large job ends its outcomes snapshot is still being taken: followed chunk
        # by chunk in the body, once the answer's headers and a CSV's header line are out.
        outcomes = current_outcomes(plane.store, job_id, directory) if record.state.terminal else None
        yield from report_batches(
            plane.client,
            job_id,
            directory,
            state=record.state,
            ledgers=record.ledgers,
            batch_rows=20_000,
            outcomes=outcomes,
        )

    return _stream(batches(), REPORT_SCHEMA, format, f"{job_id}-report")


@router.get(
    "/{job_id}/summary",
    responses={**_ERRORS, 200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def job_summary(
    job_id: str,
    plane: Plane,
    key: Key,
    format: Literal["json", "csv"] = "json",
    bucket: Annotated[
        int, Query(description="seconds per time-series point: 60, 300, 900, 3600 or 86400")
    ] = 60,
) -> Any:
    """The campaign's KPIs, in total and per operator: sent, delivered, delivery rate and time, failed
    by reason, parts and cost, unique and total clicks, click rate, conversions, conversion rate,
    value, ROI, progress to the goal, and a time series (sent, delivered, clicks, conversions)."""
    if bucket not in BUCKETS:
        raise ApiError(
            422, "invalid_request", f"bucket: one of {', '.join(map(str, BUCKETS))}", field="bucket"
        )
    found = summarize(plane.store, plane.settings, job_id, job_dir=plane.job_dir, bucket=bucket)
    if format == "csv":
        return Response(
            summary_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{job_id}-summary.csv"'},
        )
    return found


@router.get(
    "/{job_id}/clicks",
    responses={**_ERRORS, 200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
def job_clicks(
    job_id: str, plane: Plane, key: Key, format: Literal["csv", "parquet"] = "csv"
) -> StreamingResponse:
    """Every fetch of the job's links, in order: time, row, whether a bot, user agent, and a salted
    hash of the client address (never the address)."""
    record = plane.store.record(job_id)
    batches = events.read(plane.client, job_id, plane.job_dir(record), "clicks")
    return _stream(batches, events.CLICKS, format, f"{job_id}-clicks")


@router.get(
    "/{job_id}/conversions",
    responses={**_ERRORS, 200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
def job_conversions(
    job_id: str, plane: Plane, key: Key, format: Literal["csv", "parquet"] = "csv"
) -> StreamingResponse:
    """Every conversion reported for the job's recipients, in order: event id, row, when, how it was
    attributed (click, delivery, or empty: not), value."""
    record = plane.store.record(job_id)
    batches = events.read(plane.client, job_id, plane.job_dir(record), "conversions")
    return _stream(batches, events.CONVERSIONS, format, f"{job_id}-conversions")


@router.get(
    "/{job_id}/rejected",
    responses={**_ERRORS, 200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
def job_rejected(
    job_id: str, plane: Plane, key: Key, format: Literal["csv", "parquet"] = "csv"
) -> StreamingResponse:
    """The rows refused at ingest: row number, reason, detail, and the row's original values."""
    record = plane.store.record(job_id)
    directory = plane.job_dir(record)
    schema = rejected_schema(directory) if record.prepared else None
    if schema is None:
        raise _unprepared(job_id, record)
    return _stream(rejected_batches(directory), schema, format, f"{job_id}-rejected")


@router.get("/{job_id}/events", responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}}})
async def job_events(
    job_id: str,
    request: Request,
    *,
    plane: Plane,
    views: Views,
    key: Key,
    interval: Annotated[float, Query(ge=0.2, le=60)] = 1.0,
) -> StreamingResponse:
    """Server-sent events: a ``progress`` event (the job's view) every *interval* seconds, and ``end``
    with the final view when the job is done, failed or cancelled."""
    await run_in_threadpool(plane.store.record, job_id)  # 404 before the stream starts

    async def events() -> AsyncIterator[str]:
        while True:
            view = await views.get(job_id)
            final = JobState(view["state"]).terminal
            yield f"event: {'end' if final else 'progress'}\ndata: {json.dumps(view)}\n\n"
            if final or await request.is_disconnected():
                return
            await asyncio.sleep(interval)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
