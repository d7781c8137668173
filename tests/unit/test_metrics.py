"""/metrics' families from constructed snapshots, and the Grafana dashboard held to them."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from api.metrics import BIND_STATES, Snapshot, families
from tests.dashboard import exported, mismatches, queries, referenced


def _text(snap: Snapshot) -> str:
    class Fixed(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            return families(snap)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    return generate_latest(registry).decode()


def _snapshot() -> Snapshot:
    bind = {
        "bind": "t1",
        "state": "throttled",
        "in_flight": ["SubmitSm"] * 7,
        "window": 10,
        "queued": 3,
        "submitted": 1200,
        "throttled": 4,
        "learned_tps": 87.5,
        "slowed": 3,
        "receipts": 1100,
        "connects": 2,
        "disconnects": 1,
        "mo": 5,
        "mo_durable": 5,
        "rows_stopped": 2,
    }
    return Snapshot(
        jobs={"done": 3, "sending": 1},
        messages={"pending": 10, "in_flight": 7, "acked": 90},
        parts={"total": 120, "sent": 100},
        binds={"tcell": [bind, {"bind": "t2", "state": "missing"}]},
        bind_tps={("tcell", "t1"): 100.0, ("tcell", "t2"): 100.0},
        throttles={"tcell": {"rate": 200.0, "leases": 50, "waits": 9}},
        latency={"1": 900.0, "5": 150.0, "+Inf": 50.0, "sum": 2000.0},
        receipts={"held": 5, "matched_late": 4, "unowned": 1},
        replies={"optout": 2, "reply": 3, "parts": 6},
        webhooks=[{"id": "ab12", "queued": 4, "dead": 1, "delivered": 20, "last_error": "HTTP 500"}],
        ingest={"jobs": 4, "rows": 40000, "accepted": 39990, "seconds": 2.5},
        replaced={("tcell", "t2"): 3},
        send_times={"events": 1200.0, "refreshed": 1796500000.0},
    )


def _values(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if line[:1] != "#")}


def test_families_carry_the_snapshot_figures() -> None:
    values = _values(_text(_snapshot()))
    assert values['ulak_bind_state{bind="t1",operator="tcell",state="throttled"}'] == 1
    states = {s: values[f'ulak_bind_state{{bind="t1",operator="tcell",state="{s}"}}'] for s in BIND_STATES}
    assert sum(states.values()) == 1
    assert values['ulak_bind_up{bind="t1",operator="tcell"}'] == 1
    assert values['ulak_bind_failed{bind="t2",operator="tcell"}'] == 1  # missing: no actor
    assert values['ulak_bind_in_flight{bind="t1",operator="tcell"}'] == 7
    assert values['ulak_bind_throttled_total{bind="t1",operator="tcell"}'] == 4
    assert values['ulak_bind_learned_tps{bind="t1",operator="tcell"}'] == 87.5  # beside its cap
    assert values['ulak_bind_slowed_total{bind="t1",operator="tcell"}'] == 3
    assert values['ulak_bind_rows_stopped_total{bind="t1",operator="tcell"}'] == 2
    assert values['ulak_bind_submitted_total{bind="t2",operator="tcell"}'] == 0
    assert values['ulak_throttle_waits_total{operator="tcell"}'] == 9
    assert values['ulak_receipt_latency_seconds_bucket{le="5"}'] == 1050
    assert values['ulak_receipt_latency_seconds_bucket{le="+Inf"}'] == 1100
    assert values["ulak_receipt_latency_seconds_count"] == 1100
    assert values["ulak_receipt_latency_seconds_sum"] == 2000
    assert (values["ulak_receipts_held_total"], values["ulak_receipts_matched_late_total"]) == (5, 4)
    assert values["ulak_receipts_unowned_total"] == 1
    assert values['ulak_active_parts{state="sent"}'] == 100
    assert (
        values['ulak_replies_total{kind="optout"}'] == 2 and values['ulak_replies_total{kind="answer"}'] == 0
    )
    assert values['ulak_webhook_failing{endpoint="ab12"}'] == 1
    assert values['ulak_webhook_delivered_total{endpoint="ab12"}'] == 20
    assert values["ulak_ingest_rows_total"] == 40000 and values["ulak_ingest_seconds_total"] == 2.5
    assert values['ulak_bind_replacements_total{bind="t2",operator="tcell"}'] == 3
    assert values["ulak_send_time_events_total"] == 1200
    assert values["ulak_send_time_refreshed_timestamp_seconds"] == 1796500000


def test_no_series_is_labelled_by_job() -> None:
    for labels in exported(_text(_snapshot())).values():
        assert labels is not None and not labels & {"job", "job_id", "row", "msisdn", "number"}


def test_every_dashboard_query_reads_exported_metrics_and_labels() -> None:
    assert len(queries()) >= 20
    assert mismatches(_text(_snapshot())) == []


def test_the_dashboard_check_finds_a_wrong_name_and_a_wrong_label() -> None:
    text = _text(_snapshot()).replace("ulak_bind_tps", "ulak_bind_cap")
    assert any("ulak_bind_tps is not exported" in m for m in mismatches(text))
    names, labels = referenced('sum by (node) (ulak_bind_up{operator="x"})')
    assert names == {"ulak_bind_up"} and labels == {"node", "operator"}


def test_a_family_with_no_series_is_still_exported_by_name() -> None:
    text = _text(Snapshot())  # no binds, no webhook endpoints
    have = exported(text)
    assert have["ulak_webhook_queued"] is None and have["ulak_bind_submitted_total"] is None
    assert mismatches(text) == []
