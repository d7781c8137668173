"""A campaign's submit_sm bodies: encoded once per message, then only the number changes."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ulak.dispatch.message import SubmitBodies, plan_for, submit_pdus
from ulak.settings import BindConfig, OperatorConfig
from ulak.smpp.codec import preencode
from ulak.text.plan import Concat

TEXTS = [
    "Kampanya: tum urunlerde %20 indirim",
    "Şubat kampanyası: %20 indirim, ğüşıöç İĞÜŞÖÇ",
    "Привет! Скидка 20% 😀",
    "Uzun mesaj: " + "çok güzel bir kampanya, kaçırmayın! " * 9,
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
