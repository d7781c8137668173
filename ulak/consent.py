"""Consent on record (İYS-style): per number ONAY (may send commercial messages) or RET (may not).

A commercial job (``category: commercial``) sends only to numbers whose consent is ONAY, on the
global list or its brand's, and refuses the rest as ``no_consent``. Each number keeps one record,
the latest by its consent date; of two on the same date RET stands (RET overrides ONAY). A number
on the opt-out lists never counts as consenting whatever its record says: ingest checks those
first. Beside the records (a hash: number -> status, date, source) a set holds the numbers whose
record is ONAY, what ingest checks every row against in one vectorised pass; one script keeps the
two in step (one slot, the list's name as the hash tag).

Replies that opt a number out can be exported as consent changes (RET) in the fields an İYS upload
uses (``IYS_FIELDS``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ulak import keys, refusals

ONAY, RET = "ONAY", "RET"
# İYS's consent fields, in the order of its bulk upload (recipient as +90…, consentDate in Turkish
# time, source HS_MESAJ for a consent change sent by SMS, recipientType BIREYSEL for a person).
IYS_FIELDS = ("type", "source", "recipient", "status", "consentDate", "recipientType")
_TR = ZoneInfo("Europe/Istanbul")

# ARGV: n, then (number, status, at, source) n times. Keeps the latest record per number (RET on a
# tie) and the ONAY set in step; returns how many records changed, then the numbers whose record
# became RET and those that became ONAY (for the refusals stream: ulak.refusals).
_UPSERT = """
local changed = 0
local withdrawn, granted = {}, {}
for i = 0, tonumber(ARGV[1]) - 1 do
  local number, status, at, source = ARGV[2 + i * 4], ARGV[3 + i * 4], ARGV[4 + i * 4], ARGV[5 + i * 4]
  local old = redis.call('HGET', KEYS[1], number)
  local take = true
  if old then
    local rec = cjson.decode(old)
    local a, b = tonumber(at), tonumber(rec['at'])
    if a < b or (a == b and (rec['status'] == 'RET' or status == rec['status'])) then take = false end
  end
  if take then
    redis.call('HSET', KEYS[1], number, cjson.encode({status = status, at = tonumber(at), source = source}))
    if status == 'ONAY' then
      if redis.call('SADD', KEYS[2], number) == 1 then granted[#granted + 1] = number end
    else
      redis.call('SREM', KEYS[2], number)
      withdrawn[#withdrawn + 1] = number
    end
    changed = changed + 1
  end
end
return {changed, withdrawn, granted}
"""


records_key = keys.consent_records
granted_key = keys.consent_granted


@dataclass(frozen=True, slots=True)
class Consent:
    number: str  # E.164 without '+'
    status: str  # ONAY or RET
    at: float  # the consent's date (unix seconds)
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "status": self.status, "at": self.at, "source": self.source}


class Consents:
    def __init__(self, client: Any) -> None:
        self.client = client
        self._upsert = client.register_script(_UPSERT)

    def record(self, entries: Iterable[Consent], *, brand: str | None) -> int:
        """Record *entries*; returns how many changed a number's record (an older one changes none)."""
        changed = 0
        batch: list[Consent] = []
        for entry in entries:
            assert entry.status in (ONAY, RET), entry.status
            batch.append(entry)
            if len(batch) == 2000:
                changed += self._write(batch, brand)
                batch = []
        if batch:
            changed += self._write(batch, brand)
        return changed

    def _write(self, batch: list[Consent], brand: str | None) -> int:
        args: list[Any] = [len(batch)]
        for e in batch:
            args += [e.number, e.status, repr(float(e.at)), e.source[:100]]
        changed, withdrawn, granted = self._upsert(keys=[records_key(brand), granted_key(brand)], args=args)
        # RET now: rows of commercial jobs not sent yet stop (ulak.refusals); ONAY: a RET undone.
        for kind, numbers in ((refusals.NO_CONSENT, withdrawn), (refusals.CONSENTED, granted)):
            if numbers:
                decoded = [n.decode() if isinstance(n, bytes) else str(n) for n in numbers]
                refusals.publish(self.client, kind=kind, brand=brand, numbers=decoded, at=time.time())
        return int(changed)

    def get(self, number: str, *, brand: str | None) -> Consent | None:
        raw = self.client.hget(records_key(brand), number)
        return None if raw is None else _consent(number, raw)

    def counts(self, *, brand: str | None) -> dict[str, int]:
        total = int(self.client.hlen(records_key(brand)))
        onay = int(self.client.scard(granted_key(brand)))
        return {"records": total, "onay": onay, "ret": total - onay}

    def all(self, *, brand: str | None) -> Iterator[Consent]:
        for number, raw in self.client.hscan_iter(records_key(brand), count=5000):
            yield _consent(number.decode(), raw)


def _consent(number: str, raw: bytes) -> Consent:
    data = json.loads(raw)
    return Consent(number, str(data["status"]), float(data["at"]), str(data.get("source", "")))


def iys_row(number: str, at: float) -> dict[str, str]:
    """One consent change (RET, by SMS) as an İYS upload has it."""
    when = datetime.fromtimestamp(at, UTC).astimezone(_TR).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "type": "MESAJ",
        "source": "HS_MESAJ",
        "recipient": "+" + number,
        "status": RET,
        "consentDate": when,
        "recipientType": "BIREYSEL",
    }
