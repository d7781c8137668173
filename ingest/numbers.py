"""Phone numbers to E.164 (without '+', as SMPP wants them) for a whole Arrow column at once.

``phonenumbers`` parses, validates and types one number in ~60 µs: a million-row upload would spend a
minute there. :class:`NumberNormalizer` reaches the same verdict with a handful of RE2 passes built from
``phonenumbers``' own metadata (national prefix, country codes, and each region's mobile and general
number patterns), so its rules follow the library's releases. ``tests/unit/test_numbers.py`` checks it
against ``phonenumbers`` row by row.

Accepted forms: ``+90 532 123 45 67``, ``0090…`` (international prefix), ``0532…`` (national prefix of
the default region), ``532…`` (national number), ``90532…`` (country code without '+'); spaces, dashes,
dots, slashes and brackets are ignored. Anything else is ``invalid_number``; a valid number that cannot
receive SMS (fixed line, toll free) is ``not_mobile``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS

INVALID = "invalid_number"
NOT_MOBILE = "not_mobile"

_FORMATTING = r"[\s\-./()\x{00a0}\x{2011}\x{2012}\x{2013}\x{2212}]"
_TYPES = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)
_COUNTRY_CODES = {str(cc): regions for cc, regions in COUNTRY_CODE_TO_REGION_CODE.items()}


class UnknownRegion(ValueError):
    """The configured default region is not a region ``phonenumbers`` knows."""


@dataclass(frozen=True)
class Normalized:
    """Per row: the E.164 number (digits only) or null, and why not (null when valid)."""

    e164: pa.Array
    reason: pa.Array


def _metadata(region: str, cc: str) -> PhoneMetadata | None:
    if region == "001":
        return PhoneMetadata.metadata_for_nongeo_region(int(cc))
    return PhoneMetadata.metadata_for_region(region)


@cache
def _patterns(ccs: tuple[str, ...]) -> tuple[str, str]:
    """RE2 patterns over full E.164 digits: any valid number, and any mobile number, of these codes."""
    general, mobile = [], []
    for cc in ccs:
        for region in _COUNTRY_CODES[cc]:
            meta = _metadata(region, cc)
            if meta is None:
                continue
            # phonenumbers calls a number valid when it matches one of the typed patterns, not merely
            # the region's general pattern.
            for name in _TYPES:
                typed = getattr(meta, name)
                if typed is not None and typed.national_number_pattern:
                    general.append(f"{cc}(?:{typed.national_number_pattern})")
            for desc in (meta.mobile, meta.fixed_line):
                # A region whose fixed-line and mobile patterns coincide (US) types its numbers
                # FIXED_LINE_OR_MOBILE: phonenumbers counts those as mobile too.
                if desc is meta.fixed_line and (
                    meta.mobile is None
                    or desc is None
                    or desc.national_number_pattern != meta.mobile.national_number_pattern
                ):
                    continue
                if desc is not None and desc.national_number_pattern:
                    mobile.append(f"{cc}(?:{desc.national_number_pattern})")
    never = r"[^\x00-\x{10FFFF}]"  # no country code at all: a class no character is in
    return "^(?:" + ("|".join(general) or never) + ")$", "^(?:" + ("|".join(mobile) or never) + ")$"


@cache
def _trunk_prefix(cc: str) -> str:
    """The national prefix of the country code's main region, when it is plain digits."""
    region = _COUNTRY_CODES[cc][0]
    meta = _metadata(region, cc)
    if meta is None or meta.national_prefix_transform_rule:
        return ""
    for prefix in (meta.national_prefix_for_parsing, meta.national_prefix):
        if prefix and prefix.isdigit():
            return prefix
    return ""


class NumberNormalizer:
    """Normalise phone numbers written as people write them, with *default_region* for national ones."""

    def __init__(self, default_region: str = "TR") -> None:
        region = default_region.upper()
        if region not in SUPPORTED_REGIONS:
            raise UnknownRegion(
                f"unknown default region {default_region!r}: use an ISO 3166 code such as TR, DE or GB"
            )
        meta = PhoneMetadata.metadata_for_region(region)
        assert meta is not None and meta.general_desc is not None  # every supported region has both
        self.region = region
        self.country_code = str(meta.country_code)
        prefix = meta.national_prefix_for_parsing or meta.national_prefix or ""
        # Regions whose national prefix has a transform rule (a few in Latin America) get only the plain
        # forms; their numbers written with '+' or '00' are always understood.
        usable = prefix and not meta.national_prefix_transform_rule
        self._national_prefix = f"^(?:{prefix})" if usable else ""
        self._literal_prefix = prefix if usable and prefix.isdigit() else ""
        idd = meta.international_prefix or "00"
        self._idd = idd if idd.isdigit() else "00"
        self._general_national = f"^(?:{meta.general_desc.national_number_pattern})$"

    def normalize(self, values: pa.Array | pa.ChunkedArray) -> Normalized:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
            values = values.cast(pa.string())
        cleaned = self._clean(values)
        # Fast tier: the obvious reading of each number. Where it gives a mobile number, phonenumbers
        # agrees (a mobile number also matches the general pattern, so it strips the same prefixes).
        e164 = self._obvious(cleaned)
        mobile = pc.fill_null(pc.match_substring_regex(e164, _patterns(self._country_codes(e164))[1]), False)
        mobile_np = np.asarray(mobile.to_numpy(zero_copy_only=False), dtype=bool)
        reason = pa.nulls(len(values), pa.string())
        if mobile_np.all():
            return Normalized(e164, reason)
        # Exact tier, for the rest only: phonenumbers' prefix rules and the reason for rejection.
        rest = np.flatnonzero(~mobile_np)
        exact_e164, exact_reason = self._exact(cleaned.take(pa.array(rest)))
        fixed = pa.array(~mobile_np)
        return Normalized(
            pc.replace_with_mask(pc.if_else(mobile, e164, pa.scalar(None, pa.string())), fixed, exact_e164),
            pc.replace_with_mask(reason, fixed, exact_reason),
        )

    @staticmethod
    def _clean(values: pa.Array) -> pa.Array:
        """Trim, and drop formatting characters where there are any. Spaces first, literally (the
        usual formatting: a regex replace over a million numbers costs ~0.26 s, this ~0.04 s), then
        the other formatting characters by regex where any are left. Deleting characters one class
        at a time gives what deleting them all at once would."""
        trimmed = pc.utf8_trim_whitespace(values)
        messy = _messy(trimmed)
        if not pc.any(messy).as_py():
            return trimmed
        subset = pc.replace_substring(pc.filter(trimmed, messy), " ", "")
        still = _messy(subset)
        if pc.any(still).as_py():
            subset = pc.replace_with_mask(
                subset, still, pc.replace_substring_regex(pc.filter(subset, still), _FORMATTING, "")
            )
        return pc.replace_with_mask(trimmed, messy, subset)

    def _forms(self, cleaned: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
        """The digits, and which rows are written with the international prefix or nationally."""
        digits = pc.utf8_ltrim(cleaned, "+")
        plus = pc.starts_with(cleaned, "+")
        idd = pc.and_(pc.invert(plus), pc.starts_with(digits, self._idd))
        return digits, idd, pc.invert(pc.or_(plus, idd))

    def _e164(self, digits: pa.Array, *, idd: pa.Array, national: pa.Array, nsn: pa.Array) -> pa.Array:
        """National rows: country code + national number; international ones: the digits after the
        '+' or the international prefix."""
        return pc.if_else(
            national,
            pc.binary_join_element_wise(self.country_code, nsn, ""),
            pc.if_else(idd, pc.utf8_slice_codeunits(digits, len(self._idd)), digits),
        )

    def _obvious(self, cleaned: pa.Array) -> pa.Array:
        digits, idd, national = self._forms(cleaned)
        nsn = digits
        if self._literal_prefix:
            nsn = pc.if_else(
                pc.starts_with(digits, self._literal_prefix),
                pc.utf8_slice_codeunits(digits, len(self._literal_prefix)),
                digits,
            )
        return self._e164(digits, idd=idd, national=national, nsn=nsn)

    def _exact(self, cleaned: pa.Array) -> tuple[pa.Array, pa.Array]:
        well_formed = pc.fill_null(pc.match_substring_regex(cleaned, r"^\+*[0-9]{3,20}$"), False)
        digits, idd, national = self._forms(cleaned)

        nsn = digits
        plain = national  # national rows written without the national prefix
        if self._national_prefix:
            # phonenumbers strips the prefix unless that turns a valid-looking number into an invalid one.
            stripped = pc.replace_substring_regex(digits, self._national_prefix, "", max_replacements=1)
            prefixed = pc.and_(
                pc.and_(national, pc.match_substring_regex(digits, self._national_prefix)),
                pc.or_(self._national_number(stripped), pc.invert(self._national_number(digits))),
            )
            nsn = pc.if_else(prefixed, stripped, nsn)
            plain = pc.and_(national, pc.invert(prefixed))
        # "90532…" written without '+': the country code of the default region, when what follows is a
        # valid national number and the whole is not (phonenumbers' maybe_extract_country_code).
        after_cc = pc.utf8_slice_codeunits(digits, len(self.country_code))
        cc_form = pc.and_(
            pc.and_(plain, pc.starts_with(digits, self.country_code)),
            pc.and_(self._national_number(after_cc), pc.invert(self._national_number(digits))),
        )
        nsn = pc.if_else(cc_form, after_cc, nsn)
        e164 = self._e164(digits, idd=idd, national=national, nsn=nsn)
        e164 = pc.if_else(well_formed, e164, pa.scalar(None, pa.string()))
        ccs = self._country_codes(e164)  # dropping a trunk prefix keeps the country code
        e164 = self._strip_trunk_prefix(e164, ccs, international=pc.invert(national))

        general_re, mobile_re = _patterns(ccs)
        valid = pc.fill_null(pc.match_substring_regex(e164, general_re), False)
        mobile = pc.fill_null(pc.match_substring_regex(e164, mobile_re), False)
        reason = pc.if_else(
            mobile,
            pa.scalar(None, pa.string()),
            pc.if_else(valid, pa.scalar(NOT_MOBILE), pa.scalar(INVALID)),
        )
        return pc.if_else(mobile, e164, pa.scalar(None, pa.string())), reason

    def _strip_trunk_prefix(
        self, e164: pa.Array, ccs: tuple[str, ...], *, international: pa.Array
    ) -> pa.Array:
        """``+90 (0)532…``: an international number that keeps its country's national prefix. As
        phonenumbers does, drop that prefix when the number is valid only without it."""
        for cc in ccs:
            prefix = _trunk_prefix(cc)
            if not prefix:
                continue
            general_re = _patterns((cc,))[0]
            candidate = pc.binary_join_element_wise(
                cc, pc.utf8_slice_codeunits(e164, len(cc) + len(prefix)), ""
            )
            use = pc.and_(
                pc.and_(international, pc.fill_null(pc.starts_with(e164, cc + prefix), False)),
                pc.and_(
                    pc.fill_null(pc.match_substring_regex(candidate, general_re), False),
                    pc.invert(pc.fill_null(pc.match_substring_regex(e164, general_re), False)),
                ),
            )
            e164 = pc.if_else(use, candidate, e164)
        return e164

    def _national_number(self, values: pa.Array) -> pa.Array:
        """Whether each value matches the default region's general pattern for national numbers."""
        return pc.match_substring_regex(values, self._general_national)

    @staticmethod
    def _country_codes(e164: pa.Array) -> tuple[str, ...]:
        """The country codes present (E.164 codes are prefix-free: at most one of 1–3 digits fits)."""
        found: set[str] = set()
        for width in (1, 2, 3):
            heads = pc.unique(pc.utf8_slice_codeunits(pc.drop_null(e164), 0, width)).to_pylist()
            found.update(h for h in heads if h in _COUNTRY_CODES)
        return tuple(sorted(found))


def _messy(values: pa.Array) -> pa.Array:
    """Whether each value has anything but ASCII digits after its leading '+' (null: no)."""
    return pc.invert(pc.fill_null(pc.ascii_is_decimal(pc.utf8_ltrim(values, "+")), True))


def as_uint64(e164: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """E.164 digits as unsigned integers (0 for null): a compact key for de-duplication."""
    return np.asarray(pc.fill_null(pc.cast(e164, pa.uint64()), 0).to_numpy(), dtype=np.uint64)
