"""Each stored value's reader reads what its writer wrote (``ulak.records``); the ledger script's
layouts are held to the readers in ``tests/integration/test_ledger.py``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ulak.records import (
    Ack,
    IdempotentRequest,
    LinkOwner,
    PartState,
    Receipt,
    Sample,
    SurveyAsked,
    bind_field,
    read_bind_field,
    read_minute_field,
)

ids = st.text(st.characters(codec="ascii", exclude_characters="\x00"), min_size=1, max_size=40)
plain = st.text(st.characters(codec="ascii", exclude_characters="|\x00"), max_size=20)
ms = st.integers(0, 2**45)


@given(ids, ms)
def test_an_ack_keeps_an_id_with_bars_in_it(message_id: str, at_ms: int) -> None:
    assert Ack.read(Ack(message_id, at_ms).write().encode()) == Ack(message_id, at_ms)


@given(plain, plain, ms)
def test_a_receipt_reads_back(status: str, error: str, at_ms: int) -> None:
    assert Receipt.read(Receipt(status, error, at_ms).write()) == Receipt(status, error, at_ms)


def test_the_layouts_as_written() -> None:
    assert Receipt.read(b"DELIVRD|000|1733400000123").delivered
    assert Receipt.read(b"DELIVRD|000|1733400000123").at == 1733400000.123
    assert [PartState.read(x).status for x in (b"s", b"a", b"f", b"u")] == [
        "in_flight",
        "acked",
        "failed",
        "unknown",
    ]
    assert LinkOwner.read(b"j1|42|") == LinkOwner("j1", 42, "")
    assert Sample.read(b"1733400000.500|10|12") == Sample(1733400000.5, 10, 12)  # before per-ledger
    sample = Sample(1733400000.5, 10, 12, (("tcell", 7), ("voda", 5)))
    assert sample.write() == "1733400000.500|10|12|tcell=7,voda=5"
    assert Sample.read(sample.write()) == sample
    assert Sample.read(Sample(1.0, 0, 0).write()) == Sample(1.0, 0, 0)
    assert read_minute_field(b"28890000:u") == (28890000, True)
    assert read_minute_field("28890000") == (28890000, False)


@given(plain, st.integers(0, 10**7), plain)
def test_a_link_owner_reads_back(job_id: str, row: int, ledger: str) -> None:
    assert LinkOwner.read(LinkOwner(job_id, row, ledger).write()) == LinkOwner(job_id, row, ledger)


def test_a_survey_answers_within_its_window_only() -> None:
    asked = SurveyAsked.read(SurveyAsked("j", 100.0, 3600, "nps").write(since="100.000"))
    assert asked == SurveyAsked("j", 100.0, 3600.0, "nps")
    assert asked.answers_at(100.0) and asked.answers_at(3700.0)
    assert not asked.answers_at(99.9) and not asked.answers_at(3700.1)


def test_a_bind_field_reads_back() -> None:
    assert read_bind_field(bind_field("turkcell", "b1").encode()) == ("turkcell", "b1")


def test_an_idempotency_claim_reads_back_and_one_written_before_fingerprints_has_none() -> None:
    assert IdempotentRequest.read(IdempotentRequest("j1", "ab12").write().encode()) == IdempotentRequest(
        "j1", "ab12"
    )
    assert IdempotentRequest.read(b"20261205-0a1b2c3d4e") == IdempotentRequest("20261205-0a1b2c3d4e", "")
