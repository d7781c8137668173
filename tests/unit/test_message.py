"""A campaign's submit_sm bodies: encoded once per message, then only the number changes."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from ulak.dispatch.message import PlanCache, SubmitBodies, plan_for, submit_pdus
from ulak.settings import BindConfig, OperatorConfig
from ulak.smpp.codec import preencode
from ulak.text.plan import Concat, encoding_named

TEXTS = [
    "Kampanya: tum urunlerde %20 indirim",
    "Şubat kampanyası: %20 indirim, ğüşıöç İĞÜŞÖÇ",
    "Привет! Скидка 20% 😀",
    "Uzun mesaj: " + "çok güzel bir kampanya, kaçırmayın! " * 9,
    "",  # an empty message is one part with no short message
    "x" * 160,  # a full GSM part
    "ğ" * 155,  # a full Turkish single-shift part (a UDH with the shift IE)
    "ж" * 70,  # a full UCS-2 part
]


def operator(concat: Concat) -> OperatorConfig:
    bind = BindConfig(
        name="b1",
        host="127.0.0.1",
        port=2775,
        system_id="ulak",
        password_env="UNUSED",
        password=SecretStr("x"),
        source_addr="ULAK",
        source_addr_ton=5,
        source_addr_npi=0,
    )
    return OperatorConfig(name="op", prefixes=("90",), tps=100, binds=(bind,), concatenation=concat)


@pytest.mark.parametrize("concat", list(Concat))
@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize(
    ("sender", "validity"), [(None, ""), ("MARKA", "000001000000000R")], ids=["bind sender", "override"]
)
def test_bodies_are_the_bytes_of_each_submit_sm_encoded_alone(
    concat: Concat, text: str, sender: str | None, validity: str
) -> None:
    op = operator(concat)
    message = plan_for(text, op, reference=7)
    bodies = SubmitBodies(source_addr=sender, validity_period=validity)
    for number in ("905321234567", "90532", "12345678901234567890", "+905321234567", "9053 21"):
        expected = [
            preencode(p)
            for p in submit_pdus(
                message, destination=number, bind=op.binds[0], source_addr=sender, validity_period=validity
            )
        ]
        assert bodies.parts(message, destination=number, bind=op.binds[0]) == expected


def test_a_destination_the_encoder_refuses_is_refused_the_same_way() -> None:
    op = operator(Concat.UDH8)
    message = plan_for(TEXTS[0], op, reference=0)
    with pytest.raises(ValueError, match="destination_addr"):
        preencode(submit_pdus(message, destination="9" * 21, bind=op.binds[0])[0])
    with pytest.raises(ValueError, match="destination_addr"):
        SubmitBodies().parts(message, destination="9" * 21, bind=op.binds[0])


def test_an_operator_without_national_tables_is_never_sent_them() -> None:
    text = "Şükrü, ödemeniz alındı."
    national = plan_for(text, operator(Concat.UDH8), reference=0)
    plain = plan_for(text, operator(Concat.UDH8).model_copy(update={"national_languages": ()}), reference=0)
    assert (national.data_coding, national.segments[0].data[:3]) == (0x00, b"\x03\x24\x01")
    assert (plain.data_coding, plain.segments[0].esm_class) == (0x08, 0)
    assert plain.segments[0].data == text.encode("utf-16-be")


VALIDITY = "000001000000000R"


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.sampled_from("abcXYZ09 %€{}[]~|^\\şğıİçöüŞĞÇÖÜжя😀é"), max_size=200),
    st.sampled_from(list(Concat)),
    st.from_regex(r"\A[0-9]{1,20}\Z"),
)
def test_personalised_texts_are_the_bytes_of_each_submit_sm_encoded_alone(
    text: str, concat: Concat, number: str
) -> None:
    """Every row its own text (the one-part frame, then the cut for longer ones): the bytes are still
    those of the general encoder."""
    op = operator(concat)
    bodies = SubmitBodies(source_addr="MARKA", validity_period=VALIDITY)
    message = plan_for(text, op, reference=9)
    pdus = submit_pdus(
        message, destination=number, bind=op.binds[0], source_addr="MARKA", validity_period=VALIDITY
    )
    assert bodies.parts(message, destination=number, bind=op.binds[0]) == [preencode(p) for p in pdus]


@pytest.mark.parametrize("text", TEXTS)
def test_a_plan_in_the_encoding_ingest_chose_is_the_plan_it_would_choose(text: str) -> None:
    """The runner plans each row in the encoding ingest chose for it (one try instead of one per
    alphabet): the same plan as choosing again. A name the operator no longer allows (its national
    tables were taken out since) is chosen again, not sent in tables the SMSC does not have."""
    op = operator(Concat.UDH8)
    chosen = plan_for(text, op, reference=0)
    assert PlanCache().plan(text, op, row=1, encoding=chosen.encoding.name) == plan_for(
        text, op, reference=1 if chosen.parts > 1 else 0
    )
    plain = op.model_copy(update={"national_languages": ()})
    assert PlanCache().plan(text, plain, row=0, encoding=chosen.encoding.name) == plan_for(
        text, plain, reference=0
    )


ENCODING_NAMES = [
    "gsm7",
    "ucs2",
    "gsm7+turkish-shift",
    "gsm7+turkish-locking",
    "gsm7+turkish-locking+turkish-shift",
]


@settings(max_examples=400, deadline=None)
@given(
    st.text(st.sampled_from("abcXYZ09 %€{}[]~|^\\şğıİçöüŞĞÇÖÜжя😀é"), max_size=200),
    st.sampled_from(list(Concat)),
    st.booleans(),
    st.booleans(),
    st.sampled_from([None, *ENCODING_NAMES]),
    st.from_regex(r"\A[0-9]{1,20}\Z") | st.sampled_from(["+905321234567", "9" * 21, "9053 21"]),
)
# a part's edges: full, and one unit over (GSM, Turkish single shift, UCS-2; an escape is two septets)
@example("x" * 160, Concat.UDH8, False, True, None, "905321234567")
@example("x" * 161, Concat.UDH8, False, True, "gsm7", "905321234567")
@example("x" * 159 + "€", Concat.UDH8, True, True, "gsm7", "905321234567")
@example("ğ" * 155, Concat.UDH16, True, True, None, "905321234567")
@example("ğ" * 156, Concat.SAR, False, True, "gsm7+turkish-shift", "905321234567")
@example("ж" * 70, Concat.UDH8, False, False, None, "905321234567")
@example("ж" * 71, Concat.UDH8, False, False, "ucs2", "905321234567")
def test_a_one_part_text_unplanned_is_the_bytes_of_its_plan(
    text: str, concat: Concat, packed: bool, national: bool, name: str | None, number: str
) -> None:
    """``SubmitBodies.one_part`` (the runner's path for a row ingest found one part, without planning
    it) gives the bytes the planned text gives, in the encoding ingest named; it gives way (None)
    only where the plan is not one part in that encoding, or has no frame: never other bytes, and
    for a text that is one part in the encoding ingest would choose, never None."""
    op = operator(concat).model_copy(
        update={"packed_gsm": packed, "national_languages": ("turkish",) if national else ()}
    )
    bind = op.binds[0]
    chosen = plan_for(text, op, reference=0)
    name = chosen.encoding.name if name is None else name
    bodies = SubmitBodies(source_addr="MARKA", validity_period=VALIDITY)
    fast = bodies.one_part(text, op, encoding=name, destination=number, bind=bind)
    # The runner's batch path (septets worked out for many texts at once) gives the same bytes.
    (septets,) = SubmitBodies.septets_of([text], [op], [name])
    assert bodies.one_part(text, op, encoding=name, destination=number, bind=bind, septets=septets) == fast
    encoding = encoding_named(name, op.languages)
    try:
        planned = plan_for(text, op, reference=0, encoding=encoding) if encoding is not None else None
    except ValueError:  # the encoding cannot represent the text
        planned = None
    if fast is not None:
        assert planned is not None and planned.parts == 1
        pdus = submit_pdus(
            planned, destination=number, bind=bind, source_addr="MARKA", validity_period=VALIDITY
        )
        assert [fast] == [preencode(p) for p in pdus]
    elif (
        planned is not None and planned.encoding == chosen.encoding and number.isdigit() and len(number) < 21
    ):
        assert planned.parts > 1 or concat is Concat.PAYLOAD
