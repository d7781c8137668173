"""Replies, sans IO: Turkish-insensitive keywords, MO parts read and put back together."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cluster.engagement.replies import ReplyRules
from ulak.replies.keywords import Keywords, Kind, fold
from ulak.replies.mo import MoPart, Reassembler, decode_text, mo_part
from ulak.settings import RepliesConfig
from ulak.smpp.pdu import DeliverSm
from ulak.text.alphabet import TURKISH, alphabet

WORDS = Keywords.of(["RET", "IPTAL", "STOP", "DUR"], ["BASLA", "START"])


@pytest.mark.parametrize(
    "text", ["İPTAL", "iptal", "IPTAL", "Iptal", "ıptal", " iptal!", "IPTAL 🙏", "🙏 İptal.", "iptal lütfen"]
)
def test_every_spelling_of_iptal_opts_out(text: str) -> None:
    assert WORDS.classify(text).kind is Kind.OPT_OUT
    assert WORDS.classify(text).keyword == "iptal"


@pytest.mark.parametrize("text", ["Başla", "BASLA", "başla!!", "START"])
def test_opt_in_words(text: str) -> None:
    assert WORDS.classify(text).kind is Kind.OPT_IN


@pytest.mark.parametrize("text", ["", "   ", "😀", "neden stop yazayım", "retro", "Teşekkürler"])
def test_anything_else_is_a_free_reply(text: str) -> None:
    assert WORDS.classify(text).kind is Kind.REPLY


def test_fold_makes_turkish_and_english_spellings_meet() -> None:
    assert fold("HAYIR") == fold("Hayır") == fold("hayir") == "hayir"
    assert fold(" Evet! ") == "evet"
    assert fold("ÇĞÖŞÜ çğöşü") == "cgosu cgosu"


def _pdu(body: bytes, *, udh: bytes = b"", dc: int = 0, **tlvs: int) -> DeliverSm:
    data = (bytes((len(udh),)) + udh if udh else b"") + body
    return DeliverSm(
        source_addr="905321112233",
        destination_addr="4545",
        esm_class=0x40 if udh else 0,
        data_coding=dc,
        short_message=data,
        **tlvs,  # type: ignore[arg-type]
    )


def _septets(text: str, single: int = 0) -> bytes:
    septets = alphabet(0, single).to_septets(text)
    assert septets is not None
    return septets


def test_a_single_part_is_a_whole_message_at_once() -> None:
    part = mo_part(_pdu(_septets("Evet")), smsc="tcell", received=10.0)
    whole = Reassembler(timeout=60).add(part, "1-0")
    assert whole is not None
    message, tags = whole
    assert (message.text, message.parts, message.complete, tags) == ("Evet", 1, True, ["1-0"])


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar"])
def test_three_parts_out_of_order_are_put_back_in_order(concat: str) -> None:
    text = "Aldığınız hizmetten çok memnun kaldım, teşekkür ederim şubeye selamlar"
    septets = _septets(text, TURKISH)
    pieces = [septets[:25], septets[25:50], septets[50:]]
    shift = b"\x24\x01\x01"
    reassembler = Reassembler(timeout=60)
    out = []
    for seq in (3, 1, 2):
        if concat == "udh8":
            pdu = _pdu(pieces[seq - 1], udh=bytes((0, 3, 7, 3, seq)) + shift)
        elif concat == "udh16":
            pdu = _pdu(pieces[seq - 1], udh=bytes((8, 4, 0x12, 0x34, 3, seq)) + shift)
        else:
            pdu = _pdu(
                pieces[seq - 1],
                udh=shift,
                sar_msg_ref_num=0x1234,
                sar_total_segments=3,
                sar_segment_seqnum=seq,
            )
        out.append(reassembler.add(mo_part(pdu, smsc="tcell", received=float(seq)), f"{seq}-0"))
    assert out[:2] == [None, None]
    assert out[2] is not None
    message, tags = out[2]
    assert (message.text, message.parts, message.complete) == (text, 3, True)
    assert sorted(str(t) for t in tags) == ["1-0", "2-0", "3-0"]
    assert message.received == 1.0 and reassembler.waiting() == 0


def test_a_ucs2_character_split_across_parts_decodes_whole() -> None:
    body = "Harika 👍".encode("utf-16-be")
    cut = len(body) - 2  # inside the surrogate pair of the emoji
    reassembler = Reassembler(timeout=60)
    first = mo_part(_pdu(body[:cut], udh=bytes((0, 3, 1, 2, 1)), dc=8), smsc="op", received=1.0)
    second = mo_part(_pdu(body[cut:], udh=bytes((0, 3, 1, 2, 2)), dc=8), smsc="op", received=2.0)
    assert reassembler.add(second, "b") is None
    whole = reassembler.add(first, "a")
    assert whole is not None and whole[0].text == "Harika 👍"


def test_missing_parts_time_out_and_what_came_is_kept_marked_incomplete() -> None:
    reassembler = Reassembler(timeout=30)
    part = mo_part(_pdu(_septets("Merhaba"), udh=bytes((0, 3, 9, 3, 1))), smsc="op", received=100.0)
    assert reassembler.add(part, "x") is None
    again = mo_part(_pdu(_septets("Merhaba"), udh=bytes((0, 3, 9, 3, 1))), smsc="op", received=101.0)
    assert reassembler.add(again, "y") is None  # the same part sent again counts once
    assert reassembler.expired(129.0) == []
    [(message, tags)] = reassembler.expired(130.0)
    assert (message.text, message.parts, message.complete, tags) == ("Merhaba", 1, False, ["x", "y"])


def test_a_part_one_of_one_and_a_bad_udh_are_messages_of_their_own() -> None:
    single = mo_part(_pdu(_septets("Evet"), udh=bytes((0, 3, 5, 1, 1))), smsc="op", received=1.0)
    assert single.concat is None
    bad = mo_part(DeliverSm(esm_class=0x40, short_message=b"\x09\x00\x03"), smsc="op", received=1.0)
    assert bad.concat is None and bad.body == b"\x09\x00\x03"


def test_decoding_by_data_coding() -> None:
    assert decode_text(3, "Şirket".encode("cp1254").replace(b"\xde", b"S")) == "Sirket"
    assert decode_text(3, "café".encode("latin-1")) == "café"
    assert decode_text(1, b"HELLO") == "HELLO"
    assert decode_text(4, b"\x01\x02") == "<binary: 0102>"
    assert decode_text(0xF0, _septets("Evet")) == "Evet"
    assert decode_text(8, b"\xd8") == "\ufffd"  # half a character: replaced, never an error


def test_a_part_survives_its_stream_round_trip() -> None:
    part = mo_part(
        _pdu(_septets("ş", TURKISH), udh=bytes((8, 4, 1, 2, 3, 2, 0x24, 1, 1))), smsc="op", received=5.5
    )
    assert MoPart.unpack({k.encode(): v.encode() for k, v in part.pack().items()}) == part


def test_help_words_and_a_brands_own_keywords_are_answered() -> None:
    config = RepliesConfig(
        rules=(
            {
                "to": "4646",
                "brand": "acme",
                "name": "ACME",
                "keywords": ({"word": "KATIL", "reply": "ACME VIP'e hoş geldiniz", "list": "vip"},),
            },
        )
    )
    rules = ReplyRules(config)
    for text in ("yardım", "YARDIM!", "Bilgi lütfen", "help"):
        verdict, brand = rules.judge("4646", text)
        assert verdict.kind is Kind.KEYWORD and brand == "acme", text
        answer = rules.answer("4646", verdict.keyword)
        assert answer is not None and answer[1] is None
        assert answer[0].startswith("ACME: ") and "RET yazıp 4646" in answer[0]
    verdict, _ = rules.judge("4646", "katıl")
    assert verdict.kind is Kind.KEYWORD and rules.answer("4646", verdict.keyword) == (
        "ACME VIP'e hoş geldiniz",
        "vip",
    )
    assert rules.judge("4545", "katıl")[0].kind is Kind.REPLY  # only where the rule is
    help_elsewhere = rules.answer("4545", rules.judge("4545", "YARDIM")[0].keyword)
    assert help_elsewhere is not None and help_elsewhere[0].startswith("4545: ")
    assert rules.judge("4646", "RET yardım")[0].kind is Kind.OPT_OUT  # the first word decides
    silent = ReplyRules(RepliesConfig(help_reply=None))
    assert silent.answer("4545", "yardim") is None
    with pytest.raises(ValidationError, match="also an opt-out or opt-in word"):
        RepliesConfig(rules=({"to": "4646", "keywords": ({"word": "Dur", "reply": "x"},)},))
    with pytest.raises(ValidationError, match="given twice"):
        RepliesConfig(
            rules=(
                {
                    "to": "4646",
                    "keywords": ({"word": "KATIL", "reply": "x"}, {"word": "katil", "reply": "y"}),
                },
            )
        )
