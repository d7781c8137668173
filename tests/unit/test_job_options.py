"""A send-time test's options: variants grouped by their send time, and what cannot be asked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cluster.jobs.options import JobOptions


def test_variants_are_grouped_by_send_time_earliest_first() -> None:
    options = JobOptions.model_validate(
        {
            "template": "Merhaba {ad}",
            "variants": [
                {"name": "evening", "send_at": "2026-12-10T19:00:00+03:00"},
                {"name": "now"},
                {"name": "morning", "send_at": "2026-12-10T06:30:00Z"},
                {"name": "also-evening", "send_at": "2026-12-10T16:00:00Z"},
            ],
        }
    )
    assert options.send_times() == [
        (0.0, ["now"]),
        (1_796_884_200.0, ["morning"]),
        (1_796_918_400.0, ["evening", "also-evening"]),
    ]
    assert (
        JobOptions.model_validate({"template": "x", "variants": [{"name": "A"}, {"name": "B"}]}).send_times()
        == []
    )


def test_a_send_time_needs_a_zone_and_cannot_be_a_test_slice() -> None:
    with pytest.raises(ValidationError, match="needs a time zone"):
        JobOptions.model_validate(
            {"template": "x", "variants": [{"name": "A", "send_at": "2026-12-10T09:00:00"}]}
        )
    with pytest.raises(ValidationError, match="test_share cannot be combined"):
        JobOptions.model_validate(
            {
                "template": "x",
                "variants": [{"name": "A"}, {"name": "B", "send_at": "2026-12-10T09:00:00+03:00"}],
                "test_share": 0.2,
            }
        )


def test_a_survey_names_where_its_answers_come_and_follow_ups_fit_its_kind() -> None:
    with pytest.raises(ValidationError, match="reply_to"):
        JobOptions(template="Memnun musunuz?", survey={"kind": "yes_no"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="no answer of a nps survey"):
        JobOptions(template="Puan?", survey={"kind": "nps", "reply_to": "4545", "followups": {"yes": "x"}})  # type: ignore[arg-type]
    options = JobOptions(
        template="Puan?",
        sender="ULAK",
        survey={"kind": "nps", "followups": {"detractor": "Neyi düzeltelim?", "promoter": "Sağ olun"}},  # type: ignore[arg-type]
    )
    assert options.survey_reply_to() == "ULAK"
    assert options.survey is not None
    assert [options.survey.followup(s) for s in (0, 6, 7, 8, 9, 10)] == [
        "Neyi düzeltelim?",
        "Neyi düzeltelim?",
        None,
        None,
        "Sağ olun",
        "Sağ olun",
    ]


def test_commercial_jobs_are_capped_by_default_informational_ones_only_when_they_ask() -> None:
    assert JobOptions(template="x", category="commercial").capping() == "defer"
    assert JobOptions(template="x").capping() is None
    assert JobOptions(template="x", frequency_cap="refuse").capping() == "refuse"
    assert JobOptions(template="x", category="commercial", frequency_cap="off").capping() is None
    assert JobOptions(template="x", category="commercial", confirms_optout=True).capping() is None
    with pytest.raises(ValidationError, match="frequency_cap"):
        JobOptions(template="x", frequency_cap="sometimes")  # type: ignore[arg-type]
