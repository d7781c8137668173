"""Every error the API returns is JSON: ``{"code", "message", "field"?}`` with a stable code.

Lower layers raise their own errors (ingest's upload errors, the job store's not-found and
invalid-transition); the handlers here translate them to HTTP once, in one place.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cluster.engagement.conversions import ConversionRefused
from cluster.engagement.events import EventsBusy
from cluster.jobs.options import JobRefused
from cluster.jobs.states import InvalidTransition
from cluster.jobs.views import JobNotFound
from cluster.webhooks import WebhookRefused
from ingest.errors import IngestError
from ulak import redisclient
from ulak.quoting import clipped

log = structlog.get_logger("ulak.api")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(Exception):
    """An error with its HTTP status, stable code, human message and (optionally) the field at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers


MESSAGE_CHARS = 1000  # what one error message may say at most, whatever the request sent


def body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": clipped(message, MESSAGE_CHARS), **({"field": field} if field else {})}


def _respond(status: int, code: str, message: str, field: str | None = None, **kw: Any) -> JSONResponse:
    return JSONResponse(body(code, message, field), status_code=status, **kw)


def _field(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or None


def validation_error(
    exc: ValidationError | RequestValidationError, *, code: str = "invalid_request"
) -> ApiError:
    first = exc.errors()[0]
    field = _field(first.get("loc", ()))
    message = first.get("msg", "invalid value")
    if first.get("type") == "extra_forbidden":
        message = "unknown option"
    return ApiError(422, code, f"{field}: {message}" if field else message, field=field)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return _respond(exc.status, exc.code, exc.message, exc.field, headers=exc.headers)

    @app.exception_handler(IngestError)
    async def _ingest(request: Request, exc: IngestError) -> JSONResponse:
        return _respond(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(WebhookRefused)
    async def _webhook(request: Request, exc: WebhookRefused) -> JSONResponse:
        return _respond(422, "webhook_not_allowed", exc.message, "webhook_url")

    @app.exception_handler(JobRefused)
    async def _refused(request: Request, exc: JobRefused) -> JSONResponse:
        return _respond(422, exc.code, exc.message, exc.field)

    @app.exception_handler(ConversionRefused)
    async def _conversion(request: Request, exc: ConversionRefused) -> JSONResponse:
        return _respond(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(EventsBusy)
    async def _busy(request: Request, exc: EventsBusy) -> JSONResponse:
        return _respond(503, "busy", exc.message, headers={"Retry-After": "30"})

    @app.exception_handler(JobNotFound)
    async def _not_found(request: Request, exc: JobNotFound) -> JSONResponse:
        return _respond(404, "job_not_found", exc.message, "id")

    @app.exception_handler(InvalidTransition)
    async def _transition(request: Request, exc: InvalidTransition) -> JSONResponse:
        return _respond(409, "invalid_state", exc.message, "state")

    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = validation_error(exc)
        return _respond(err.status, err.code, err.message, err.field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        return _respond(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    async def _redis(request: Request, exc: Exception) -> JSONResponse:
        # Redis away for longer than the client's retries: the state is there, just not reachable.
        log.warning("api.redis_unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return _respond(
            503,
            "redis_unavailable",
            "Redis, which holds every job's state, cannot be reached; nothing was changed. Try again "
            "in a few seconds; if it lasts, check the Redis server (ULAK_REDIS__URL)",
            headers={"Retry-After": "2"},
        )

    for unreachable in redisclient.UNREACHABLE:  # the list the runner waits out, too
        app.add_exception_handler(unreachable, _redis)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api.crashed", path=request.url.path)
        return _respond(500, "internal_error", f"{type(exc).__name__}: the server failed; see its log")
