"""The Grafana dashboard's queries, and what they refer to, for the tests that hold them to /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[1] / "configs" / "grafana" / "ulak-dashboard.json"
_NAME = re.compile(r"\bulak_[a-zA-Z0-9_]+")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")
_MATCHER = re.compile(r"\{([^}]*)\}")


def queries() -> list[tuple[str, str]]:
    """Every (panel title, PromQL expression) of the dashboard."""
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p["targets"]]


def referenced(expr: str) -> tuple[set[str], set[str]]:
    """The metric (sample) names *expr* reads, and the label names it groups by or matches on."""
    labels = {label.strip() for group in _BY.findall(expr) for label in group.split(",") if label.strip()}
    for inner in _MATCHER.findall(expr):
        labels |= {m.split("=")[0].strip().rstrip("!~") for m in inner.split(",") if "=" in m}
    return set(_NAME.findall(expr)), labels


def exported(text: str) -> dict[str, set[str] | None]:
    """Sample name -> its label names, from a /metrics scrape; None for a family declared with no
    series yet (no webhook endpoint, say): its name is known, its labels cannot be seen."""
    found: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(text):
        if not family.samples:
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
            for suffix in suffixes.get(family.type, ("",)):
                found.setdefault(family.name + suffix, None)
        for sample in family.samples:
            labels = found.get(sample.name) or set()
            found[sample.name] = labels | set(sample.labels)
    return found


def mismatches(text: str) -> list[str]:
    """What the dashboard asks for that *text* does not export: one line per problem (none: fine)."""
    have = exported(text)
    problems = []
    for title, expr in queries():
        names, labels = referenced(expr)
        if not names:
            problems.append(f"{title}: {expr!r} reads no ulak_ metric")
        for name in sorted(names - have.keys()):
            problems.append(f"{title}: {name} is not exported")
        if any(have.get(n, set()) is None for n in names):
            continue  # a family with no series: its labels are the unit test's to check
        known: set[str] = set().union(*(have.get(n) or set() for n in names))
        for label in sorted(labels - known):
            problems.append(f"{title}: label {label!r} is on none of {sorted(names)}")
    return problems
