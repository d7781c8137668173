"""Campaigns side by side (``GET /v1/campaigns``): each recent campaign's results as its summary
gives them (rates, value, cost, ROI, per operator and per variant), for a marketer to compare.

A summary reads every row's outcome; twenty of them per page would be twenty such reads, and a
sending job's would read its ledgers while the binds write them. So:

* a job that has not ended shows the figures its view has (its counters: sent, delivered, clicks,
  conversions, value and their rates), without cost, ROI and the per operator and variant figures,
  which need every row (``final: false``);
* an ended job's results are kept (``keys.job_results``) with a fingerprint of the counters they were
  read at (acked, delivered, failed, clicks, conversions, value: what a summary's figures follow;
  people click and convert long after a job ends). A page reads each job's view (a few hashes) and
  its kept results; only a job whose fingerprint moved is summarised again.

Previews (dry runs) and the messages Ulak sends by itself are never among them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from cluster.jobs.record import JobRecord
from cluster.jobs.store import JobStore
from cluster.reports.summary import summarize
from ulak import keys
from ulak.jobfiles import JobDir
from ulak.settings import Settings

KEEP_SECONDS = 90 * 86400  # kept results expire (the job's own retention deletes them sooner)


def figures(kpis: Mapping[str, Any]) -> dict[str, Any]:
    """The compared figures of one group of a summary (the total, an operator, a variant)."""
    return {
        "sent": kpis["sent"],
        "delivered": kpis["delivered"],
        "delivery_rate": kpis["delivery_rate"],
        "clicks": kpis["clicks"]["unique"],
        "click_rate": kpis["click_rate"],
        "conversions": kpis["conversions"],
        "conversion_rate": kpis["conversion_rate"],
        "value": kpis["value"],
        "cost": kpis["cost"],
        "roi": kpis["roi"],
    }


def results(summary: Mapping[str, Any]) -> dict[str, Any]:
    """What a campaign is compared by, from its summary."""
    survey = summary.get("survey") or {}
    return {
        **figures(summary),
        "operators": {op: figures(k) for op, k in summary["operators"].items()},
        "variants": {name: figures(k) for name, k in summary["variants"].items()},
        "nps": (survey.get("nps") or {}).get("nps"),
        "responses": survey.get("responses"),
        "final": True,
    }


def from_view(view: Mapping[str, Any]) -> dict[str, Any]:
    """A job's results while it runs (or when it sent nothing): its view's counters only."""
    delivered = view["receipts"]["delivered"]
    return {
        "sent": view["counts"]["acked"],
        "delivered": delivered,
        "delivery_rate": view["delivery_rate"],
        "clicks": view["clicks"]["unique"],
        "click_rate": view["clicks"]["click_rate"],
        "conversions": view["conversions"]["conversions"],
        "conversion_rate": view["conversions"]["conversion_rate"],
        "value": view["conversions"]["value"],
        "cost": None,
        "roi": None,
        "operators": {},
        "variants": {},
        "nps": None,
        "responses": None,
        "final": False,
    }


def fingerprint(view: Mapping[str, Any]) -> str:
    """The counters a campaign's results follow: when none moved, the kept results are current."""
    c, r = view["counts"], view["receipts"]
    return "|".join(
        str(x)
        for x in (
            view["state"],
            c["acked"],
            c["failed"],
            c["unknown"],
            r["delivered"],
            view["clicks"]["unique"],
            view["conversions"]["conversions"],
            view["conversions"]["value"],
        )
    )


class Campaigns:
    """The recent campaigns' results (the module docstring)."""

    def __init__(
        self, store: JobStore, settings: Settings, *, job_dir: Callable[[JobRecord], JobDir]
    ) -> None:
        self.store = store
        self.settings = settings
        self.job_dir = job_dir

    def recent(self, *, limit: int = 20, now: float | None = None) -> list[dict[str, Any]]:
        """The last *limit* campaigns (not previews), newest first, each with its results."""
        found = []
        for job_id in self.store.ids(limit=limit, kind="campaigns"):
            view = self.store.view(job_id)
            found.append(
                {
                    "id": job_id,
                    "name": view["options"].get("name"),
                    "state": view["state"],
                    "ended": view["ended"],
                    "created": view["times"].get("created"),
                    "accepted": view["counts"]["accepted"],
                    "currency": self.settings.measurement.currency,
                    **self.results(job_id, view, now=now),
                }
            )
        return found

    def results(self, job_id: str, view: Mapping[str, Any], *, now: float | None = None) -> dict[str, Any]:
        """The job's results: kept ones if still current, else from its summary (and kept)."""
        now = time.time() if now is None else now
        if not view["ended"] or not view["counts"]["accepted"]:
            return from_view(view)
        mark = fingerprint(view)
        raw = self.store.client.get(keys.job_results(job_id))
        if raw:
            kept = json.loads(raw)
            if kept["fingerprint"] == mark:
                return dict(kept["results"])
        found = results(summarize(self.store, self.settings, job_id, job_dir=self.job_dir, bucket=86400))
        self.store.client.set(
            keys.job_results(job_id),
            json.dumps({"fingerprint": mark, "at": now, "results": found}),
            ex=KEEP_SECONDS,
        )
        return found
