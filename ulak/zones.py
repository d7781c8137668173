"""Each recipient's time zone, from their number, for a send window kept in the recipient's own
local time (``window_timezone: recipient``).

phonenumbers knows the zones of a number's area (a mobile number: its country's). A country with
one zone gives it; one with several (the US, Russia, Spain with the Canaries…) gives the area's
when the number is geographic, and otherwise the country's main zone: ``jobs.recipient_zones``
names it per region, with the defaults below; a number whose zone nobody knows gets
``jobs.unknown_zone``. Lookups are cached by the number's first seven digits (numbers that share
them share an area), so a job asks phonenumbers a few thousand times, not once a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as number_zones

# The main zone of each country with several, where a mobile number does not say which.
MAIN_ZONES = {
    "US": "America/New_York",
    "CA": "America/Toronto",
    "MX": "America/Mexico_City",
    "BR": "America/Sao_Paulo",
    "AR": "America/Argentina/Buenos_Aires",
    "CL": "America/Santiago",
    "RU": "Europe/Moscow",
    "KZ": "Asia/Almaty",
    "UA": "Europe/Kyiv",
    "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon",
    "GB": "Europe/London",
    "IT": "Europe/Rome",
    "NO": "Europe/Oslo",
    "DK": "Europe/Copenhagen",
    "FR": "Europe/Paris",
    "NL": "Europe/Amsterdam",
    "AU": "Australia/Sydney",
    "NZ": "Pacific/Auckland",
    "ID": "Asia/Jakarta",
    "CN": "Asia/Shanghai",
    "MN": "Asia/Ulaanbaatar",
    "CD": "Africa/Kinshasa",
    "EC": "America/Guayaquil",
    "KI": "Pacific/Tarawa",
    "FM": "Pacific/Pohnpei",
    "PF": "Pacific/Tahiti",
}
CACHE = 65536  # areas remembered
_UNKNOWN = "Etc/Unknown"  # phonenumbers' answer when it does not know


class Zones:
    """A recipient's zone from their number (E.164 digits, with or without ``+``)."""

    def __init__(self, *, main: Mapping[str, str] | None = None, unknown: str = "Europe/Istanbul") -> None:
        self.main = {**MAIN_ZONES, **(main or {})}
        self.unknown = ZoneInfo(unknown)
        self._cache: dict[str, ZoneInfo] = {}  # first seven digits -> zone

    def of(self, number: str) -> ZoneInfo:
        digits = number.lstrip("+")
        zone = self._cache.get(digits[:7])
        if zone is None:
            if len(self._cache) >= CACHE:
                self._cache.clear()
            zone = self._cache[digits[:7]] = self._lookup(digits)
        return zone

    def _lookup(self, digits: str) -> ZoneInfo:
        try:
            parsed = phonenumbers.parse("+" + digits)
        except phonenumbers.NumberParseException:
            return self.unknown
        zones = [z for z in number_zones.time_zones_for_number(parsed) if z != _UNKNOWN]
        if len(zones) == 1:
            return ZoneInfo(zones[0])
        region = phonenumbers.region_code_for_number(parsed)
        name = self.main.get(region or "")
        if name is not None:
            return ZoneInfo(name)
        return ZoneInfo(zones[0]) if zones else self.unknown
