#!/usr/bin/env python3
"""Codec and text-planning micro-benchmarks: Ulak's codec against smpplib, our GSM tables against gsmcodecs.

    python scripts/bench/bench_codec.py [--seconds 1.0]

Prints one line per case: operations per second and microseconds per operation (best of 5 runs).
"""

from __future__ import annotations

import argparse
import codecs
import platform
import sys
import timeit
from collections.abc import Callable

import gsmcodecs  # noqa: F401 - registers the gsm23.038 codecs for comparison
import smpplib.smpp

from ulak.smpp.codec import decode, encode
from ulak.smpp.pdu import DeliverSm, SubmitSm, SubmitSmResp
from ulak.text import plan
from ulak.text.alphabet import TURKISH, alphabet

TEXT_GSM = "Kampanya: tum urunlerde %20 indirim, detaylar icin https://ulak.example/k/Ab3 adresine bakin."
TEXT_TR = "Şubat kampanyası: tüm ürünlerde %20 indirim! Detaylar için tıklayın: https://ulak.example/k/Ab3"
TEXT_UCS2 = "Акция: скидка 20% на все товары, подробности по ссылке https://ulak.example/k/Ab3 😀"
RECEIPT = (
    b"id:1a2b3c sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:DELIVRD err:000 text:"
)


class _Seq:
    sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


def measure(name: str, fn: Callable[[], object], seconds: float, *, items: int = 1) -> None:
    """Print *fn*'s best time; per item for a call that does *items* things."""
    timer = timeit.Timer(fn)
    n, t = timer.autorange()
    number = max(1, int(n * seconds / max(t, 1e-9)))
    best = min(timer.repeat(repeat=5, number=number)) / number / items
    print(f"{name:<52} {1 / best:>12,.0f} ops/s {best * 1e6:>9.2f} µs")


def _smpplib(submit_bytes: bytes, receipt_bytes: bytes, s: float) -> None:
    """The same PDUs through smpplib, for comparison."""
    client = _Seq()

    def smpplib_encode() -> bytes:
        pdu = smpplib.smpp.make_pdu(
            "submit_sm",
            client=client,
            source_addr_ton=5,
            source_addr="ULAK",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="905321234567",
            registered_delivery=1,
            short_message=TEXT_GSM.encode(),
        )
        return pdu.generate()  # type: ignore[no-any-return]

    measure("smpplib encode submit_sm", smpplib_encode, s)
    measure("smpplib decode submit_sm", lambda: smpplib.smpp.parse_pdu(submit_bytes, client=client), s)
    measure(
        "smpplib decode deliver_sm receipt",
        lambda: smpplib.smpp.parse_pdu(receipt_bytes, client=client, allow_unknown_opt_params=True),
        s,
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=0.5, help="approximate time per run")
    s = p.parse_args().seconds
    print(f"# python {platform.python_version()} on {platform.machine()}, {platform.processor() or 'cpu'}")

    submit = SubmitSm(
        source_addr_ton=5,
        source_addr="ULAK",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="905321234567",
        registered_delivery=1,
        short_message=TEXT_GSM.encode(),
    )
    receipt = DeliverSm(
        source_addr="905321234567",
        destination_addr="ULAK",
        esm_class=4,
        short_message=RECEIPT,
        receipted_message_id="1a2b3c",
        message_state=2,
        network_error_code=b"\x03\x00\x00",
    )
    resp = SubmitSmResp(sequence=7, message_id="1a2b3c")
    submit_bytes, receipt_bytes, resp_bytes = encode(submit, 1), encode(receipt, 2), encode(resp)

    measure("ulak encode submit_sm", lambda: encode(submit, 1), s)
    measure("ulak decode submit_sm", lambda: decode(submit_bytes), s)
    measure("ulak encode submit_sm_resp", lambda: encode(resp), s)
    measure("ulak decode submit_sm_resp", lambda: decode(resp_bytes), s)
    measure("ulak encode deliver_sm receipt (text + TLVs)", lambda: encode(receipt, 2), s)
    measure("ulak decode deliver_sm receipt (text + TLVs)", lambda: decode(receipt_bytes), s)

    _smpplib(submit_bytes, receipt_bytes, s)

    tr = alphabet(0, TURKISH)
    measure("ulak GSM+Turkish shift encode (95 chars)", lambda: tr.to_septets(TEXT_TR), s)
    # A runner's batch of personalised texts (one a row), encoded together: the time is per text.
    batch = [TEXT_TR.replace("Ab3", f"{i:05d}") for i in range(10_000)]
    many = "ulak GSM+Turkish shift encode, 10,000 at once"
    measure(many, lambda: tr.to_septets_many(batch), s, items=len(batch))
    measure(
        "gsmcodecs GSM+Turkish shift encode (95 chars)", lambda: codecs.encode(TEXT_TR, "gsm23.038_0_1"), s
    )
    septets = tr.to_septets(TEXT_TR)
    assert septets is not None
    measure("ulak GSM+Turkish shift decode", lambda: tr.decode(septets), s)
    measure("gsmcodecs GSM+Turkish shift decode", lambda: codecs.decode(septets, "gsm23.038_0_1"), s)
    measure("plan() GSM text, 1 part", lambda: plan(TEXT_GSM), s)
    measure("plan() Turkish text, 1 part", lambda: plan(TEXT_TR), s)
    measure("plan() Turkish text x4, 3 parts", lambda: plan(TEXT_TR * 4), s)
    measure("plan() UCS-2 text with emoji, 2 parts", lambda: plan(TEXT_UCS2 * 2), s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
