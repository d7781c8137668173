"""/v1/optouts (the opt-out lists) and /v1/replies (what recipients sent back)."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import Key, Plane, WriteKey
from api.errors import ApiError
from api.schemas import ErrorBody
from cluster.engagement import replies
from ingest.numbers import NumberNormalizer
from ulak import keys
from ulak.consent import IYS_FIELDS, Consent, Consents, iys_row
from ulak.optouts import OptOuts
from ulak.replies.keywords import fold
from ulak.settings import BRAND_PATTERN, RepliesConfig, ReplyRule

router = APIRouter(tags=["replies"])

_BRAND = re.compile(BRAND_PATTERN)
MAX_NUMBERS = 100_000


class OptOutsIn(BaseModel):
    """Numbers to put on (POST) an opt-out list: the global one, or a brand's."""

    model_config = ConfigDict(extra="forbid")

    numbers: list[str] = Field(min_length=1, max_length=MAX_NUMBERS, description="as people write them")
    brand: str | None = Field(default=None, pattern=BRAND_PATTERN, description="default: the global list")
    source: str = Field(default="api", pattern=r"^(api|import)$", description="api, or import (a file)")
    detail: str = Field(default="", max_length=500, description="e.g. the file's name")


def _brand(brand: str | None) -> str | None:
    if brand is not None and not _BRAND.match(brand):
        raise ApiError(422, "invalid_brand", f"{brand!r} is no brand name: {BRAND_PATTERN}", field="brand")
    return brand


def normalized(plane: Any, numbers: list[str]) -> list[str]:
    """*numbers* as E.164 without '+' (the ingest's rules), or a 422 naming the first that is not one."""
    result = NumberNormalizer(plane.settings.ingest.default_region).normalize(pa.array(numbers, pa.string()))
    e164 = result.e164.to_pylist()
    for i, (number, value) in enumerate(zip(numbers, e164, strict=True)):
        if value is None:
            reason = result.reason[i].as_py() or "invalid_number"
            raise ApiError(
                422,
                "invalid_number",
                f"{number!r} (item {i}) is not a mobile number ({reason}); write it as +90 532 123 45 67",
                field="numbers",
            )
    return [str(v) for v in e164]


@router.post(
    "/v1/optouts",
    status_code=201,
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def add_optouts(body: OptOutsIn, plane: Plane, key: WriteKey) -> dict[str, Any]:
    """Put numbers on the list: rows with them are refused (``opted_out``) by every job prepared
    from now on (the global list), or by the brand's jobs (``brand`` on the job), and stopped
    (``opted_out``, with the time) in those already running, paused or scheduled: nothing not yet
    sent goes to them (``ulak.refusals``)."""

    def add() -> dict[str, Any]:
        numbers = normalized(plane, body.numbers)
        store = OptOuts(plane.client)
        added = store.add(numbers, brand=body.brand, source=body.source, detail=body.detail)
        return {
            "brand": body.brand,
            "added": added,
            "already": len(set(numbers)) - added,
            "total": store.count(brand=body.brand),
        }

    return await run_in_threadpool(add)


@router.get("/v1/optouts", responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def list_optouts(
    plane: Plane,
    key: Key,
    brand: str | None = Query(default=None, description="default: the global list"),
    cursor: int = Query(default=0, ge=0, le=2**64 - 1, description="from the last page's next_cursor"),
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> dict[str, Any]:
    """One page of a list, each entry with where it came from (``mo``: a reply; ``api``;
    ``import``) and when; ``next_cursor`` 0 on the last page."""
    _brand(brand)

    def page() -> dict[str, Any]:
        store = OptOuts(plane.client)
        entries, next_cursor = store.page(brand=brand, cursor=cursor, count=limit)
        return {
            "brand": brand,
            "total": store.count(brand=brand),
            "brands": store.brands(),
            "items": [e.as_dict() for e in entries],
            "next_cursor": next_cursor,
        }

    return await run_in_threadpool(page)


@router.get(
    "/v1/optouts/{number}",
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def get_optout(number: str, plane: Plane, key: Key, brand: str | None = None) -> dict[str, Any]:
    """Whether a number is on a list, and since when and why."""
    _brand(brand)

    def get() -> dict[str, Any]:
        [e164] = normalized(plane, [number])
        entry = OptOuts(plane.client).get(e164, brand=brand)
        if entry is None:
            where = f"brand {brand}'s" if brand else "the global"
            raise ApiError(404, "not_opted_out", f"{e164} is not on {where} opt-out list")
        return entry.as_dict()

    return await run_in_threadpool(get)


@router.delete(
    "/v1/optouts/{number}",
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
async def remove_optout(number: str, plane: Plane, key: WriteKey, brand: str | None = None) -> dict[str, Any]:
    """Take a number off a list (it asked to receive messages again)."""
    _brand(brand)

    def remove() -> dict[str, Any]:
        [e164] = normalized(plane, [number])
        if not OptOuts(plane.client).remove([e164], brand=brand):
            where = f"brand {brand}'s" if brand else "the global"
            raise ApiError(404, "not_opted_out", f"{e164} is not on {where} opt-out list")
        return {"number": e164, "brand": brand, "removed": True}

    return await run_in_threadpool(remove)


@router.get("/v1/replies", responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def list_replies(
    plane: Plane,
    key: Key,
    kind: str | None = Query(default=None, pattern=r"^(optout|optin|keyword|answer|reply)$"),
    before: str | None = Query(default=None, pattern=r"^\d+-\d+$", description="a reply's id: older ones"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """The latest replies, newest first: who sent what to which short code, what it meant, and
    the counts so far (parts, messages by kind, incomplete, duplicates the SMSC sent again)."""

    if before is not None:
        ms, seq = (int(n) for n in before.split("-"))
        if ms >= 2**64 or seq >= 2**64 or (ms, seq) == (0, 0):
            raise ApiError(422, "invalid_before", f"{before!r} is no reply id", field="before")

    def read() -> dict[str, Any]:
        items = replies.recent(plane.client, limit=limit, before=before or "+", kind=kind)
        return {"counts": replies.counts(plane.client), "items": items}

    return await run_in_threadpool(read)


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=1, max_length=40, description="as people write it")
    status: Literal["ONAY", "RET"]
    date: datetime | None = Field(default=None, description="when it was given (ISO 8601); default now")
    source: str = Field(default="api", max_length=100, description="e.g. HS_WEB, HS_FIZIKSEL_ORTAM")


class ConsentsIn(BaseModel):
    """Consent records (İYS-style) for a brand's list, or the global one."""

    model_config = ConfigDict(extra="forbid")

    records: list[ConsentIn] = Field(min_length=1, max_length=MAX_NUMBERS)
    brand: str | None = Field(default=None, pattern=BRAND_PATTERN)


@router.post(
    "/v1/consents",
    status_code=201,
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def record_consents(body: ConsentsIn, plane: Plane, key: WriteKey) -> dict[str, Any]:
    """Record consents: each number keeps its latest by date, and of two on the same date RET
    stands. A commercial job sends only to numbers whose record is ONAY (and not opted out); a
    record that becomes RET stops that number's unsent rows in the commercial jobs already running
    (``no_consent``)."""

    def record() -> dict[str, Any]:
        numbers = normalized(plane, [r.number for r in body.records])
        now = time.time()
        entries = [
            Consent(n, r.status, r.date.timestamp() if r.date is not None else now, r.source)
            for n, r in zip(numbers, body.records, strict=True)
        ]
        store = Consents(plane.client)
        changed = store.record(entries, brand=body.brand)
        return {"brand": body.brand, "changed": changed, **store.counts(brand=body.brand)}

    return await run_in_threadpool(record)


@router.get("/v1/consents", responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def consent_counts(plane: Plane, key: Key, brand: str | None = None) -> dict[str, Any]:
    """How many records a list has, and how many of them are ONAY and RET."""
    _brand(brand)
    return {"brand": brand, **await run_in_threadpool(Consents(plane.client).counts, brand=brand)}


@router.get(
    "/v1/consents/{number}",
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def get_consent(number: str, plane: Plane, key: Key, brand: str | None = None) -> dict[str, Any]:
    """A number's consent on record."""
    _brand(brand)

    def get() -> dict[str, Any]:
        [e164] = normalized(plane, [number])
        entry = Consents(plane.client).get(e164, brand=brand)
        if entry is None:
            raise ApiError(404, "no_consent", f"{e164} has no consent on record")
        return entry.as_dict()

    return await run_in_threadpool(get)


@router.get("/v1/optouts.iys.csv", response_class=PlainTextResponse, responses={401: {"model": ErrorBody}})
async def export_iys(plane: Plane, key: Key, brand: str | None = None) -> PlainTextResponse:
    """The opt-outs that came by reply, as consent changes (RET) in the fields of an İYS upload
    (type, source, recipient, status, consentDate, recipientType)."""
    _brand(brand)

    def export() -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=IYS_FIELDS, lineterminator="\n")
        writer.writeheader()
        for entry in OptOuts(plane.client).all(brand=brand):
            if entry.source == "mo":
                writer.writerow(iys_row(entry.number, entry.at))
        return out.getvalue()

    text = await run_in_threadpool(export)
    return PlainTextResponse(text, media_type="text/csv; charset=utf-8")


class KeywordsIn(BaseModel):
    """Keyword rules in place of the configuration's (``replies.*``): the defaults, and per short
    code its brand and words."""

    model_config = ConfigDict(extra="forbid")

    optout_words: list[str] = Field(min_length=1, max_length=100)
    optin_words: list[str] = Field(default_factory=list, max_length=100)
    help_words: list[str] | None = Field(
        default=None, max_length=100, description="default: the configuration's"
    )
    help_reply: str | None = Field(default=None, max_length=459, description="default: the configuration's")
    rules: list[ReplyRule] = Field(default_factory=list, max_length=1000)


def _keywords(config: RepliesConfig) -> dict[str, Any]:
    return {k: config.model_dump(mode="json")[k] for k in replies.KEYWORD_FIELDS}


@router.get("/v1/replies/keywords", responses={401: {"model": ErrorBody}})
async def get_keywords(plane: Plane, key: Key) -> dict[str, Any]:
    """The keyword rules in force, and whether the API set them (else the configuration's)."""
    config, raw = await run_in_threadpool(replies.keyword_config, plane.client, plane.settings.replies)
    return {"source": "api" if raw is not None else "config", **_keywords(config)}


@router.put(
    "/v1/replies/keywords",
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def set_keywords(body: KeywordsIn, plane: Plane, key: WriteKey) -> dict[str, Any]:
    """Change the keyword rules (in force within 2 s); words are matched folded, so "IPTAL" covers
    "İptal", "iptal" and "ıptal"."""
    for word in [
        *body.optout_words,
        *body.optin_words,
        *(w for r in body.rules for w in r.optout_words or ()),
    ]:
        if not fold(word):
            raise ApiError(
                422, "invalid_keyword", f"{word!r} has no letter or digit to match", field="optout_words"
            )
    stored = body.model_dump(mode="json", exclude_none=True)
    try:  # the rules as they would be in force: a keyword that is also an opt-out word, say
        RepliesConfig.model_validate({**plane.settings.replies.model_dump(), **stored})
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ApiError(422, "invalid_keyword", message, field="rules") from None
    await run_in_threadpool(plane.client.set, keys.REPLY_KEYWORDS, json.dumps(stored, ensure_ascii=False))
    config, _ = await run_in_threadpool(replies.keyword_config, plane.client, plane.settings.replies)
    return {"source": "api", **_keywords(config)}


@router.delete("/v1/replies/keywords", responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})
async def reset_keywords(plane: Plane, key: WriteKey) -> dict[str, Any]:
    """Back to the configuration's keyword rules."""
    await run_in_threadpool(plane.client.delete, keys.REPLY_KEYWORDS)
    return {"source": "config", **_keywords(plane.settings.replies)}


@router.get("/v1/replies/lists/{name}", responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def keyword_list(
    plane: Plane,
    key: Key,
    *,
    name: str = Path(pattern=BRAND_PATTERN),
    brand: str | None = Query(default=None, description="the rule's brand (default: none)"),
    cursor: int = Query(default=0, ge=0, le=2**64 - 1, description="from the last page's next_cursor"),
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> dict[str, Any]:
    """One page of the numbers that joined list *name* by sending its keyword (a rule's
    ``keywords``: ``{word: KATIL, reply: …, list: vip}``); ``next_cursor`` 0 on the last page."""
    _brand(brand)

    def page() -> dict[str, Any]:
        list_key = keys.keyword_list(brand, name)
        next_cursor, members = plane.client.sscan(list_key, cursor=cursor, count=limit)
        return {
            "list": name,
            "brand": brand,
            "total": plane.client.scard(list_key),
            "items": sorted(f"+{m.decode() if isinstance(m, bytes) else m}" for m in members),
            "next_cursor": int(next_cursor),
        }

    return await run_in_threadpool(page)
