"""Turn an uploaded file into routed, planned rows ready to send, plus a report of the rows refused.

Flow (``docs/ARCHITECTURE.md`` draws it)::

    open_source()        recognise the file, read its header, refuse a bad upload (ingest.errors)
    Ray Data read        one task streams the file as Arrow blocks of text columns, numbering rows,
                         no further ahead of the driver than ingest.read_ahead_mib (ingest.pacing);
                         an XLSX sheet a slice at a time (ingest.sheets)
    _prepare_block()     per block as the read streams it, a plain Ray task each, all vectorised:
                         E.164 numbers, operator, text (template or text column), encoding and
                         parts, opt-outs; a few blocks ahead of the driver, no more
    Collector (driver)   in file order: de-duplicates numbers across the whole upload (first row
                         wins), counts the preview, appends the block to accepted.parquet and
                         rejected.parquet, and drops it (ingest.collect)

Row-level problems never fail the upload: each refused row keeps its original values and gets one
reason from :data:`ingest.collect.REASONS` (the first that applies, in that order).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data
import redis

from ingest.collect import (
    DETAIL,
    ENCODING,
    LINK_CODE,
    MSISDN,
    OPERATOR,
    PARTS,
    PHASE,
    REASON,
    TEXT,
    VARIANT,
    Collector,
    PreparedCampaign,
    rest_columns,
)
from ingest.errors import ColumnNotFound, IngestError, NoPhoneColumn, UnknownOperator
from ingest.numbers import NumberNormalizer, as_uint64
from ingest.pacing import Pacing
from ingest.sources import MALFORMED, ROW, Source, check_row_count, open_source, probe_sheet
from ingest.spec import CampaignSpec
from ingest.template import Template, match_column
from ulak import consent, jobfiles, keys, links, redisclient
from ulak.dispatch.routing import Router, router_from_operators
from ulak.quoting import listed, quoted
from ulak.redis_server import redacted
from ulak.settings import IngestConfig, OperatorConfig
from ulak.text.vector import plan_columns
from ulak.variants import Split

PHONE_NAMES = (
    "phone",
    "msisdn",
    "gsm",
    "telefon",
    "numara",
    "mobile",
    "cep",
    "tel",
    "phone_number",
    "phonenumber",
    "mobile_number",
    "cep_telefonu",
    "cep telefonu",
    "telefon_no",
    "telefon no",
    "gsm_no",
    "gsm no",
    "number",
    "numarası",
    "telefon numarası",
)


@dataclass(frozen=True)
class LinkSpec:
    """How a job's ``{link}`` is filled: each row's code reserved for *job_id* for *ttl* seconds
    (``ulak.links.reserve``), the link *prefix* followed by it."""

    job_id: str
    prefix: str
    code_length: int
    ttl: float
    redis_url: str

    def codes(self, rows: pa.Array, ledgers: pa.Array) -> pa.Array:
        return links.reserve(
            _link_client(self.redis_url),
            job_id=self.job_id,
            rows=rows,
            ledgers=ledgers,
            length=self.code_length,
            ttl=self.ttl,
        )


@functools.cache
def _link_client(url: str) -> redis.Redis:
    return redisclient.client(url)  # one a worker process, kept for its blocks


def find_phone_column(columns: Sequence[str], wanted: str | None, *, shown: str = "the file") -> str:
    if wanted is not None:
        found = match_column(columns, wanted)
        if found is not None:
            return found
        raise ColumnNotFound(
            f"there is no column {quoted(wanted)}; the columns are: {listed(columns)}", field="phone_column"
        )
    by_name = {c.strip().casefold(): c for c in columns}
    for name in PHONE_NAMES:
        if name in by_name:
            return by_name[name]
    raise NoPhoneColumn(
        f"{shown} has no phone number column (looked for "
        + ", ".join(PHONE_NAMES[:8])
        + ", …); the columns are: "
        + ", ".join(columns)
        + "; name it with phone_column",
        field="phone_column",
    )


@dataclass
class _BlockPreparer:
    """Everything a worker needs to prepare a block; built once in the driver, shipped with the task."""

    phone: str
    template: Template | None
    text_column: str | None
    region: str
    operators: tuple[OperatorConfig, ...]
    router: Router
    optouts: Any  # ObjectRef of the opt-out snapshot (pa.Array), None when nobody opted out
    links: LinkSpec | None = None
    split: Split | None = None
    variant_templates: tuple[Template | None, ...] = ()  # per variant, its own (None: the job's)
    consent: Any = None  # commercial: ObjectRef of the numbers with consent (pa.Array), else None
    commercial: bool = False
    optout_instruction: str | None = None  # commercial with a text column: each row's text matches it

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        reason = _where(pc.is_valid(table.column(MALFORMED)), "malformed_row")
        detail = table.column(MALFORMED).combine_chunks()

        normalized = _normalizer(self.region).normalize(table.column(self.phone))
        reason = pc.coalesce(reason, normalized.reason)
        msisdn = normalized.e164
        routes = self.router.route(msisdn)
        reason = pc.coalesce(reason, _where(pc.is_null(routes), "unknown_operator"))
        variant = self.split.assign(as_uint64(msisdn)) if self.split is not None else None
        table, codes = self._link_codes(table, routes, variant)

        pieces = None
        if self.template is not None and variant is not None and any(self.variant_templates):
            text, missing = self._render_variants(table, variant)  # plan_columns plans the text itself
        elif self.template is not None:
            text, missing = self.template.render(table)
            pieces = self.template.pieces_of(table)
            reason = pc.coalesce(reason, _where(pc.is_valid(missing), "template_error"))
            detail = pc.coalesce(detail, pc.binary_join_element_wise("no value for {", missing, "}", ""))
        else:
            text = table.column(self.text_column).combine_chunks()
            empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(text), ""), True)
            reason = pc.coalesce(reason, _where(empty, "empty_text"))

        encoding, parts, limit = self._plan(text, routes, reason, pieces)
        too_long = pa.array(parts > limit)
        reason = pc.coalesce(reason, _where(too_long, "too_many_parts"))
        detail = pc.coalesce(
            detail,
            pc.if_else(
                too_long,
                pc.binary_join_element_wise(
                    pa.array(parts).cast(pa.string()),
                    " parts; the operator allows ",
                    pa.array(limit).cast(pa.string()),
                    "",
                ),
                pa.scalar(None, pa.string()),
            ),
        )
        reason = pc.coalesce(reason, self._opted_out(msisdn, reason))
        if self.commercial:
            reason = self._commercial(msisdn, text, reason)
        rest: dict[str, pa.Array] = {}
        if variant is not None and self.split is not None and self.split.rest_index >= 0:
            rest, reason = self._rest_texts(table, variant, routes, reason)

        names = pa.array([op.name for op in self.operators], pa.string())
        prepared = (
            table.append_column(MSISDN, msisdn)
            .append_column(OPERATOR, pc.take(names, routes))
            .append_column(TEXT, pc.cast(text, pa.string()))
            .append_column(ENCODING, encoding)
            .append_column(PARTS, pa.array(parts, pa.int32()))
            .append_column(REASON, reason)
            .append_column(DETAIL, pc.cast(detail, pa.string()) if n else pa.nulls(0, pa.string()))
            .append_column(LINK_CODE, codes)
            .append_column(VARIANT, self._labels(variant, n))
            .append_column(PHASE, self._phases(variant, n))
        )
        for name, column in rest.items():
            prepared = prepared.append_column(name, column)
        return prepared

    def _link_codes(
        self, table: pa.Table, routes: pa.Array, variant: np.ndarray[Any, Any] | None
    ) -> tuple[pa.Table, pa.Array]:
        """With tracked links: each row's code, reserved before the text is rendered (so its length
        is the real one), and the table with the ``{link}`` column; else no codes."""
        n = table.num_rows
        if self.links is None:
            return table, pa.nulls(n, pa.string())
        ledgers = pc.take(pa.array([op.ledger_name for op in self.operators], pa.string()), routes)
        rows = table.column(ROW).combine_chunks()
        held = self.split.held(variant) if self.split is not None and variant is not None else None
        if held is not None and held.any():
            # A held-out row is never sent: no code is reserved for it, and its text (never sent,
            # planned for the preview's like-for-like cost) carries a dummy one of the same length.
            keep = pa.array(np.flatnonzero(~held))
            codes = pa.nulls(n, pa.string())
            reserved = self.links.codes(rows.take(keep), ledgers.take(keep))
            codes = _scatter(codes, keep, reserved)
            shown = pc.fill_null(codes, "0" * self.links.code_length)
        else:
            codes = shown = self.links.codes(rows, ledgers)
        link = pc.binary_join_element_wise(self.links.prefix, shown, "")
        return table.append_column(links.LINK_FIELD, link), codes

    def _commercial(self, msisdn: pa.Array, text: pa.Array, reason: pa.Array) -> pa.Array:
        """A commercial job's refusals: no consent on record, and (a text column's) no opt-out text."""
        granted = _fetch(self.consent) if self.consent is not None else pa.array([], pa.string())
        reason = pc.coalesce(reason, _where(pc.invert(pc.is_in(msisdn, value_set=granted)), "no_consent"))
        if self.text_column is not None and self.optout_instruction:
            says = pc.match_substring_regex(pc.cast(text, pa.string()), "(?i)" + self.optout_instruction)
            reason = pc.coalesce(reason, _where(pc.invert(pc.fill_null(says, False)), "no_optout_text"))
        return reason

    def _rest_texts(
        self, table: pa.Table, variant: np.ndarray[Any, Any], routes: pa.Array, reason: pa.Array
    ) -> tuple[dict[str, pa.Array], pa.Array]:
        """Test then winner: a ``rest`` row gets the winning variant, not known yet, so it is rendered
        and planned with every variant's text (``rest_columns``; null on other rows). A rest row that
        one of them cannot be sent with (a field empty, too many parts) is refused now, as any row."""
        assert self.split is not None
        n = table.num_rows
        at = np.flatnonzero(variant == self.split.rest_index)
        taken = pa.array(at)
        sub, sub_routes, sub_reason = table.take(taken), routes.take(taken), reason.take(taken)
        columns: dict[str, pa.Array] = {}
        refused = pa.nulls(len(at), pa.string())
        for i, name in enumerate(self.split.names):
            own = self.variant_templates[i] if i < len(self.variant_templates) else None
            template = own or self.template
            if template is not None:
                text, missing = template.render(sub)
                refused = pc.coalesce(refused, _where(pc.is_valid(missing), "template_error"))
            else:
                text = sub.column(self.text_column).combine_chunks()
            text = pc.cast(text, pa.string())
            encoding, parts, limit = self._plan(text, sub_routes, sub_reason, None)
            refused = pc.coalesce(refused, _where(pa.array(parts > limit), "too_many_parts"))
            text_col, parts_col, encoding_col = rest_columns(name)
            columns[text_col] = _scatter(pa.nulls(n, pa.string()), taken, text)
            columns[parts_col] = _scatter(pa.nulls(n, pa.int32()), taken, pa.array(parts, pa.int32()))
            columns[encoding_col] = _scatter(pa.nulls(n, pa.string()), taken, encoding)
        return columns, pc.coalesce(reason, _scatter(pa.nulls(n, pa.string()), taken, refused))

    def _phases(self, variant: np.ndarray[Any, Any] | None, n: int) -> pa.Array:
        if variant is None or self.split is None or self.split.rest_index < 0:
            return pa.nulls(n, pa.string())
        return pa.array(np.where(variant == self.split.rest_index, "rest", "test"), pa.string())

    def _labels(self, variant: np.ndarray[Any, Any] | None, n: int) -> pa.Array:
        if variant is None or self.split is None:
            return pa.nulls(n, pa.string())
        return pc.take(pa.array(self.split.labels, pa.string()), pa.array(variant))

    def _render_variants(self, table: pa.Table, variant: np.ndarray[Any, Any]) -> tuple[pa.Array, pa.Array]:
        """Each row's text rendered with its variant's template (the job's for a variant without one,
        and for the holdout: the texts it would have had)."""
        assert self.template is not None
        texts, missing, where = [], [], []
        for k in range(int(variant.max(initial=-1)) + 1):
            rows = np.flatnonzero(variant == k)
            if not rows.size:
                continue
            # a rest row's own text waits for the winner: the first variant's stands in meanwhile
            first = self.split is not None and k == self.split.rest_index
            own = (
                self.variant_templates[0 if first else k]
                if (first or k < len(self.variant_templates))
                else None
            )
            text, gaps = (own or self.template).render(table.take(pa.array(rows)))
            texts.append(pc.cast(text, pa.string()))
            missing.append(pc.cast(gaps, pa.string()))
            where.append(rows)
        if not where:
            return self.template.render(table)
        back = pa.array(np.argsort(np.concatenate(where), kind="stable"))
        return pa.concat_arrays(texts).take(back), pa.concat_arrays(missing).take(back)

    def _plan(
        self, text: pa.Array, routes: pa.Array, reason: pa.Array, pieces: list[pa.Array | str] | None
    ) -> tuple[pa.Array, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Encoding and parts of each still-valid row, planned the way its operator concatenates and
        with the national tables its SMSC takes (from the template's *pieces* when there is a
        template: see ``plan_columns``).

        Every row is planned once the first operator's way. Only the rows of operators planned
        otherwise are planned again: all of them where the national languages differ, and only those
        of more than one part where just the concatenation does (a single part carries no
        concatenation header, so its plan is the same for all of them)."""
        n = len(text)
        parts = np.zeros(n, dtype=np.int32)
        codes = np.full(n, -1, dtype=np.int8)
        ok = np.asarray(pc.is_null(reason).to_numpy(zero_copy_only=False), dtype=bool)
        op_index = np.asarray(pc.fill_null(routes, -1).to_numpy(zero_copy_only=False), dtype=np.int32)
        index: dict[str, int] = {}  # encoding name -> its code, over every way planned
        valid = np.flatnonzero(ok & (op_index >= 0))
        ways = list(dict.fromkeys((op.concatenation, op.languages) for op in self.operators))
        for k, (concat, languages) in enumerate(ways):
            rows = valid
            if k:
                members = [
                    i
                    for i, op in enumerate(self.operators)
                    if (op.concatenation, op.languages) == (concat, languages)
                ]
                rows = valid[np.isin(op_index[valid], members)]
                if languages == ways[0][1]:
                    rows = rows[parts[rows] > 1]
            if rows.size == 0:
                continue
            taken = pa.array(rows)
            enc, planned = plan_columns(
                text.take(taken),
                concat=concat,
                languages=languages,
                pieces=None
                if pieces is None
                else [p if isinstance(p, str) else p.take(taken) for p in pieces],
            )
            parts[rows] = planned
            # Each way has its own list of encoding names: codes index one list of them all.
            local = enc.dictionary.to_pylist()
            remap = np.array([index.setdefault(name, len(index)) for name in local] or [0], dtype=np.int8)
            got = pc.fill_null(enc.indices, -1).to_numpy()
            codes[rows] = np.where(got >= 0, remap[np.maximum(got, 0)], -1)
        limit = np.full(n, np.iinfo(np.int32).max, dtype=np.int32)
        for i, op in enumerate(self.operators):
            limit[op_index == i] = op.max_parts
        if not index:
            return pa.nulls(n, pa.string()), parts, limit
        encoding = pa.DictionaryArray.from_arrays(
            pa.array(codes, pa.int8(), mask=codes < 0), pa.array(list(index), pa.string())
        )
        return encoding.cast(pa.string()), parts, limit

    def _opted_out(self, msisdn: pa.Array, reason: pa.Array) -> pa.Array:
        if self.optouts is None:
            return pa.nulls(len(msisdn), pa.string())
        return _where(
            pc.and_(pc.is_null(reason), pc.is_in(msisdn, value_set=_fetch(self.optouts))), "opted_out"
        )


def _scatter(into: pa.Array, at: pa.Array, values: pa.Array) -> pa.Array:
    """*into* with *values* put at the positions *at*."""
    mask = np.zeros(len(into), dtype=bool)
    mask[np.asarray(at.to_numpy(), dtype=np.int64)] = True
    return pc.replace_with_mask(into, pa.array(mask), values)


def _where(mask: pa.Array, reason: str) -> pa.Array:
    """*reason* where *mask* holds, null elsewhere: one rule's verdict, to coalesce with earlier ones."""
    return pc.if_else(mask, pa.scalar(reason), pa.scalar(None, pa.string()))


def optout_snapshot(client: redis.Redis, brand: str | None = None) -> pa.Array:
    """The opt-out list as it is now (the global one, and *brand*'s), as one Arrow array. Checking a
    block against it is one vectorised ``is_in``; asking Redis per number (even batched) costs more
    than the rest of ingest together."""
    numbers: set[Any] = set()
    for key in (keys.OPTOUT, *((keys.optout_set(brand),) if brand else ())):
        cursor = 0
        while True:
            cursor, chunk = client.sscan(key, cursor, count=10_000)
            numbers.update(chunk)
            if cursor == 0:
                break
    return pa.array(sorted(n.decode() for n in numbers), pa.string())


_FETCHED: dict[str, pa.Array] = {}


def _fetch(ref: Any) -> pa.Array:
    key = ref.hex()
    if key not in _FETCHED:
        _FETCHED.clear()  # one upload at a time per worker is what matters
        _FETCHED[key] = ray.get(ref)
    return _FETCHED[key]


@functools.cache
def _normalizer(region: str) -> NumberNormalizer:
    return NumberNormalizer(region)


def allowed_operators(
    operators: Sequence[OperatorConfig], wanted: Sequence[str] | None
) -> tuple[OperatorConfig, ...]:
    """The configured operators a job may use (*wanted*, or all); :class:`UnknownOperator` names any
    that is not configured."""
    if wanted is None:
        return tuple(operators)
    unknown = sorted(set(wanted) - {op.name for op in operators})
    if unknown:
        raise UnknownOperator(
            f"unknown operators {unknown}; configured: {[op.name for op in operators]}", field="operators"
        )
    return tuple(op for op in operators if op.name in wanted)


def _open(path: Path, spec: CampaignSpec, config: IngestConfig, name: str | None) -> Source:
    return open_source(
        path,
        name=name,
        max_bytes=config.max_file_bytes,
        max_rows=config.max_rows,
        encoding=spec.encoding or config.csv_encoding,
        fallback_encoding=config.fallback_encoding,
        sheet=spec.sheet,
        max_unzipped_bytes=config.max_unzipped_bytes,
        max_zip_ratio=config.max_zip_ratio,
    )


def check_upload(
    path: Path,
    spec: CampaignSpec,
    *,
    config: IngestConfig,
    operators: Sequence[OperatorConfig],
    name: str | None = None,
) -> None:
    """Refuse a bad upload before anything starts: format, size, row count, the workbook and its
    sheet, the phone column, the text column and the template's fields, the allowed operators. What
    can still go wrong after this is a row's own problem, which goes to the rejected-rows report."""
    source = _open(path, spec, config, name)
    columns = source.columns or probe_sheet(source, max_rows=config.max_rows)
    check_row_count(source, max_rows=config.max_rows)
    find_phone_column(columns, spec.phone_column, shown=source.shown)
    spec.bound_template(columns)
    spec.variant_bound_templates(columns)
    find_text_column(columns, spec.text_column)
    allowed_operators(operators, spec.operators)


def _configure_ray_data() -> None:
    """Ray Data as ingest wants it: rows in file order, blocks of a few MB, no progress bars."""
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the reports list rows in file order
    ctx.enable_progress_bars = False
    # Blocks of a few MB: the file is read by one task, and its blocks are what spreads over the CPUs.
    ctx.target_max_block_size = 2 << 20


def prepare(
    path: Path,
    spec: CampaignSpec,
    *,
    config: IngestConfig,
    operators: Sequence[OperatorConfig],
    redis_url: str,
    directory: jobfiles.JobDir | Path,
    name: str | None = None,
    read_here: bool = False,
    links: LinkSpec | None = None,
    optout_instruction: str | None = None,
) -> PreparedCampaign:
    """Read, check and prepare *path* on the running Ray cluster into *directory*'s
    ``accepted.parquet`` and ``rejected.parquet`` (see the module docstring). With *read_here* the
    read runs on this node (*path* is a local copy no other node has); the preparing spreads anyway.

    Raises an :class:`ingest.errors.IngestError` for a bad upload, before any row is processed (for a
    spreadsheet, after it has been read: its header is inside the file's compressed XML).
    """
    source = _open(path, spec, config, name)
    allowed = allowed_operators(operators, spec.operators)
    _configure_ray_data()
    # A spreadsheet read whole (XLS, ODS, a small or unusual XLSX: see ingest.sheets) has its header
    # inside the parsed sheet: it is read (once, into the object store) before anything is checked,
    # and there is nothing to pace.
    whole_sheet = not source.columns
    pacing = None if whole_sheet else Pacing.new(redis_url, ahead_bytes=config.read_ahead_mib << 20)
    node = ray.get_runtime_context().get_node_id() if read_here else None
    dataset = _unwrap(lambda: source.dataset(max_rows=config.max_rows, pacing=pacing, node=node))
    columns = source.columns
    if whole_sheet:
        dataset = _unwrap(dataset.materialize)
        columns = tuple(n for n in dataset.schema().names if n not in (ROW, MALFORMED))
    preparer = _BlockPreparer(
        phone=find_phone_column(columns, spec.phone_column, shown=source.shown),
        template=spec.bound_template(columns),
        variant_templates=spec.variant_bound_templates(columns),
        split=spec.split,
        text_column=find_text_column(columns, spec.text_column),
        region=config.default_region,
        operators=allowed,
        router=router_from_operators(allowed, configured=operators),
        optouts=_optouts_ref(redis_url, spec.brand) if spec.optouts else None,
        consent=_consent_ref(redis_url, spec.brand) if spec.commercial else None,
        commercial=spec.commercial,
        optout_instruction=optout_instruction,
        links=links,
    )
    collector = _collector(directory, source, columns=columns, allowed=allowed, spec=spec, config=config)
    try:
        _unwrap(lambda: _stream_blocks(dataset, preparer, collector, pacing))
    except BaseException:
        collector.abort()
        raise
    finally:
        if pacing is not None:
            pacing.close()
    return collector.finish()


def _collector(
    directory: jobfiles.JobDir | Path,
    source: Source,
    *,
    columns: tuple[str, ...],
    allowed: Sequence[OperatorConfig],
    spec: CampaignSpec,
    config: IngestConfig,
) -> Collector:
    """What gathers the prepared blocks into the job's files, and counts the preview."""
    split = spec.split
    return Collector(
        jobfiles.of(directory),
        source=source,
        columns=columns,
        operators=[op.name for op in allowed],
        samples=config.sample_messages,
        holdout=split is not None and split.holdout > 0,
        rest_variants=split.names if split is not None and split.rest_index >= 0 else (),
    )


@ray.remote(num_cpus=1)
def _prepare_block(preparer: _BlockPreparer, table: pa.Table, start: int, end: int | None) -> pa.Table:
    return preparer(table.slice(start, None if end is None else end - start))


# Prepared blocks waiting for the driver, at most: enough to keep both CPUs busy while the driver
# writes one, few enough that the object store holds a handful of blocks, not the upload.
_AHEAD = 4


def _stream_blocks(
    dataset: Any, preparer: _BlockPreparer, collector: Collector, pacing: Pacing | None
) -> None:
    """Each block the read streams out is prepared by a plain Ray task as soon as it arrives, and
    handed to *collector* in file order; at most ``_AHEAD`` are prepared ahead of it, and with
    *pacing* the read waits for the driver (``ingest.pacing``) instead of filling memory. Not
    ``map_batches``: on a 2-CPU machine Ray Data ran those tasks one at a time (20 tasks of 0.1 s
    CPU: 2.5 s, as plain tasks 1.1 s; BENCHMARKS.md, ingest)."""
    shipped = ray.put(preparer)
    ahead: deque[Any] = deque()
    for bundle in dataset.iter_internal_ref_bundles():
        for entry, piece in zip(bundle.blocks, bundle.slices, strict=True):
            start, end = (0, None) if piece is None else (piece.start_offset, piece.end_offset)
            if pacing is not None:
                pacing.taken(entry.metadata.num_rows if end is None else end - start)
            ahead.append(_prepare_block.remote(shipped, entry.ref, start, end))
            if len(ahead) > _AHEAD:
                collector.add(ray.get(ahead.popleft()))
    while ahead:
        collector.add(ray.get(ahead.popleft()))


def _optouts_ref(redis_url: str, brand: str | None = None) -> Any:
    client = redisclient.client(redis_url)
    try:
        snapshot = optout_snapshot(client, brand)
    except redis.RedisError as exc:
        raise RuntimeError(
            f"cannot read the opt-out list from Redis at {redacted(redis_url)}: {exc}"
        ) from exc
    finally:
        client.close()
    return ray.put(snapshot) if len(snapshot) else None


def _consent_ref(redis_url: str, brand: str | None) -> Any:
    """The numbers with consent (ONAY) on record, the brand's or (without one) the global list's."""
    client = redisclient.client(redis_url)
    try:
        numbers: list[Any] = []
        cursor = 0
        while True:
            cursor, chunk = client.sscan(consent.granted_key(brand), cursor, count=10_000)
            numbers.extend(chunk)
            if cursor == 0:
                break
    except redis.RedisError as exc:
        raise RuntimeError(
            f"cannot read the consent list from Redis at {redacted(redis_url)}: {exc}"
        ) from exc
    finally:
        client.close()
    return ray.put(pa.array(sorted(n.decode() for n in numbers), pa.string())) if numbers else None


def find_text_column(columns: Sequence[str], wanted: str | None) -> str | None:
    if wanted is None:
        return None
    if wanted in columns:
        return wanted
    raise ColumnNotFound(
        f"there is no text column {quoted(wanted)}; the columns are: {listed(columns)}", field="text_column"
    )


def _unwrap(run: Any) -> Any:
    """Run a Ray Data step; an upload error raised inside a task comes out as itself, not wrapped."""
    try:
        return run()
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ray.exceptions.RayTaskError):  # it also subclasses the cause's type
                cause = cause.cause
            elif isinstance(cause, IngestError):
                raise type(cause)(cause.message, cause.field) from None
            else:
                cause = cause.__cause__
        raise
