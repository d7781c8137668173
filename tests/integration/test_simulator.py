"""The SMSC simulator over real TCP: auth, throttling, receipts, faults, MO, record and stats."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts

from tests.helpers import Esme, SimProcess, async_wait_for, wait_for
from ulak.smpp import CommandStatus
from ulak.smpp.pdu import DeliverSm, EnquireLink, SubmitSm, SubmitSmResp
from ulak.smpp.receipt import MessageIdFormat, ReceiptStatus, normalize_message_id, parse_receipt
from ulak.text import Concat, plan
from ulak.text.udh import decode_user_data

TURKISH = "Şubat kampanyası: %20 indirim, ğüşıöç İĞÜŞÖÇ. Detaylar için tıklayın: https://ulak.example/k/Ab3"


def submits(
    text: str, n: int, *, concat: Concat = Concat.UDH8, registered: int = 1, prefix: str = "9053"
) -> list[SubmitSm]:
    pdus = []
    for i in range(n):
        p = plan(text, concat=concat, reference=i & 0xFF)
        for seg in p.segments:
            pdus.append(
                SubmitSm(
                    source_addr_ton=5,
                    source_addr="ULAK",
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    destination_addr=f"{prefix}{i:08d}",
                    esm_class=seg.esm_class,
                    data_coding=p.data_coding,
                    registered_delivery=registered,
                    short_message=b"" if seg.in_payload else seg.data,
                    message_payload=seg.data if seg.in_payload else None,
                    sar_msg_ref_num=seg.sar[0] if seg.sar else None,
                    sar_total_segments=seg.sar[1] if seg.sar else None,
                    sar_segment_seqnum=seg.sar[2] if seg.sar else None,
                )
            )
    return pdus


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_smpplib_client_binds_sends_and_gets_receipts(sim: SimProcess) -> None:
    received: list[object] = []
    client = smpplib.client.Client("127.0.0.1", sim.port, allow_unknown_opt_params=True, timeout=10)
    client.set_message_received_handler(lambda pdu, **_: received.append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id="test", password="secret")
        p = plan(TURKISH * 2)
        for seg in p.segments:
            client.send_message(
                source_addr_ton=5,
                source_addr="ULAK",
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr="905321234567",
                short_message=seg.data,
                data_coding=p.data_coding,
                esm_class=seg.esm_class,
                registered_delivery=True,
            )
        deadline_reads = 0
        while len(received) < p.parts and deadline_reads < 50:
            client.read_once()
            deadline_reads += 1
    finally:
        client.unbind()
        client.disconnect()
    assert len(received) == p.parts == 2
    records = sim.records()
    assert "".join(r["text"] for r in records) == TURKISH * 2
    assert [r["concat"][2] for r in records] == [1, 2]
    assert {r.receipted_message_id.decode() for r in received} == {r["message_id"] for r in records}  # type: ignore[attr-defined]


def test_wrong_password_and_unknown_account(sim: SimProcess) -> None:
    async def scenario() -> tuple[int, int, int]:
        statuses = []
        for system_id, password in (("test", "nope"), ("ghost", "secret"), ("test", "secret")):
            esme = Esme()
            await esme.connect(sim.port)
            statuses.append((await esme.bind(system_id, password)).response.status)
            await esme.close()
        return statuses[0], statuses[1], statuses[2]

    assert run(scenario()) == (
        CommandStatus.ESME_RINVPASWD,
        CommandStatus.ESME_RINVSYSID,
        CommandStatus.ESME_ROK,
    )
    stats = sim.stats()
    assert (stats["binds"], stats["binds_refused"]) == (1, 2)


@pytest.mark.sim_args(
    "--account", "other:secret", "--allow", "test=10.0.0.0/8,192.0.2.7/32", "--allow", "other=127.0.0.0/8"
)
def test_an_account_binds_only_from_its_whitelisted_addresses(sim: SimProcess) -> None:
    """As operators do: ``test`` may bind only from its whitelisted networks, so our 127.0.0.1 is
    refused; ``other`` is whitelisted for loopback; the stats say who came from where."""

    async def scenario() -> list[int]:
        statuses = []
        for system_id in ("test", "other"):
            esme = Esme()
            await esme.connect(sim.port)
            statuses.append((await esme.bind(system_id, "secret")).response.status)
            await esme.close()
        return statuses

    assert run(scenario()) == [CommandStatus.ESME_RBINDFAIL, CommandStatus.ESME_ROK]
    stats = sim.stats()
    assert stats["binds_refused_address"] == 1
    assert stats["refused_peers"] == {"test": {"127.0.0.1": 1}}
    assert stats["bind_peers"] == {"other": {"127.0.0.1": 1}}


def test_smpplib_sees_invalid_password(sim: SimProcess) -> None:
    client = smpplib.client.Client("127.0.0.1", sim.port, timeout=10)
    client.connect()
    with pytest.raises(smpplib.exceptions.PDUError) as info:
        client.bind_transceiver(system_id="test", password="wrong")
    client.disconnect()
    assert info.value.args[1] == smpplib.consts.SMPP_ESME_RINVPASWD


@pytest.mark.sim_args("--tps", "50")
def test_tps_cap_answers_throttled_beyond_the_cap(sim: SimProcess) -> None:
    async def scenario() -> list[int]:
        esme = Esme(window=200)
        await esme.connect(sim.port)
        await esme.bind()
        responses = await esme.submit(submits("burst", 120, registered=0))
        await esme.close()
        return [r.response.status for r in responses]

    statuses = run(scenario())
    # 120 submits arrive within milliseconds: the 1 s sliding window admits exactly the cap
    assert Counter(statuses) == {CommandStatus.ESME_ROK: 50, CommandStatus.ESME_RTHROTTLED: 70}
    stats = sim.stats()
    assert (stats["submit_sm_accepted"], stats["rejected"]) == (50, {"ESME_RTHROTTLED": 70})
    assert len(sim.records()) == 50


@pytest.mark.sim_args(
    "--dlr-mix",
    "DELIVRD=0.7,UNDELIV=0.1,EXPIRED=0.1,REJECTD=0.1",
    "--dlr-delay",
    "0.01:0.2",
    "--id-format",
    "hex",
    "--dlr-id-format",
    "dec",
    "--dlr-id-upper",
    "--dlr-format",
    "text",
)
def test_receipt_mix_and_id_formats(sim: SimProcess) -> None:
    async def scenario() -> tuple[list[str], list[DeliverSm]]:
        esme = Esme()
        await esme.connect(sim.port)
        await esme.bind()
        responses = await esme.submit(submits("hello", 300))
        await async_wait_for(lambda: len(esme.receipts()) >= 300, what="300 receipts")
        await asyncio.sleep(0.1)
        await esme.close()
        return [r.response.message_id for r in responses], esme.receipts()  # type: ignore[union-attr]

    ids, receipts = run(scenario())
    assert len(receipts) == 300
    parsed = [parse_receipt(r) for r in receipts]
    by_key = {normalize_message_id(m, MessageIdFormat.HEX) for m in ids}
    assert {normalize_message_id(p.message_id, MessageIdFormat.DEC) for p in parsed if p} == by_key
    counts = Counter(p.status.value for p in parsed if p)
    assert sum(counts.values()) == 300
    assert set(counts) == {"DELIVRD", "UNDELIV", "EXPIRED", "REJECTD"}
    assert sim.stats()["receipts"] == dict(counts)


@pytest.mark.sim_args("--reject-prefix", "90599", "--reject-prefix", "90598:0x45")
def test_rejects_by_destination_prefix(sim: SimProcess) -> None:
    async def scenario() -> list[int]:
        esme = Esme()
        await esme.connect(sim.port)
        await esme.bind()
        pdus = (
            submits("x", 2, prefix="90599")
            + submits("x", 3, prefix="90598")
            + submits("x", 4, prefix="90532")
        )
        responses = await esme.submit(pdus)
        await esme.close()
        return [r.response.status for r in responses]

    assert (
        run(scenario())
        == [CommandStatus.ESME_RINVDSTADR] * 2 + [CommandStatus.ESME_RSUBMITFAIL] * 3 + [0] * 4
    )


@pytest.mark.sim_args("--error-rate", "0.3", "--error-status", "ESME_RSYSERR", "--msgqful-rate", "0.1")
def test_errors_by_rate_add_up(sim: SimProcess) -> None:
    async def scenario() -> list[int]:
        esme = Esme()
        await esme.connect(sim.port)
        await esme.bind()
        responses = await esme.submit(submits("x", 400, registered=0))
        await esme.close()
        return [r.response.status for r in responses]

    counts = Counter(run(scenario()))
    assert set(counts) == {0, CommandStatus.ESME_RSYSERR, CommandStatus.ESME_RMSGQFUL}
    stats = sim.stats()
    assert stats["submit_sm_accepted"] == counts[0] == len(sim.records())
    assert stats["rejected"] == {
        "ESME_RSYSERR": counts[CommandStatus.ESME_RSYSERR],
        "ESME_RMSGQFUL": counts[CommandStatus.ESME_RMSGQFUL],
    }


@pytest.mark.sim_args("--drop-after", "40")
def test_dropped_connection_leaves_exactly_the_in_flight_unknown(sim: SimProcess) -> None:
    async def scenario() -> Esme:
        esme = Esme(window=10)
        await esme.connect(sim.port)
        await esme.bind()  # PDU 1
        await esme.submit(submits("x", 100, registered=0))
        await async_wait_for(lambda: esme.closed, what="the drop")
        return esme

    esme = run(scenario())
    assert esme.closed is not None
    acked = {r.response.message_id for r in esme.responses if isinstance(r.response, SubmitSmResp)}
    lost = [o.pdu.destination_addr for o in esme.closed.in_flight]  # type: ignore[union-attr]
    assert len(acked) == 38  # PDUs 2..39 answered; the 40th is where the line went dead
    assert 1 <= len(lost) <= 10
    records = sim.records()
    recorded = {r["dst"] for r in records}
    answered = {r.request.destination_addr for r in esme.responses if isinstance(r.request, SubmitSm)}  # type: ignore[union-attr]
    assert answered <= recorded  # every acknowledged message really reached the SMSC
    assert recorded <= answered | set(lost)  # and nothing reached it that we don't know about
    assert sim.stats()["connections_dropped"] == 1


def test_refuse_binds_for_a_while(sim: SimProcess) -> None:
    sim.control(op="refuse_binds", seconds=0.5)

    async def attempt() -> int:
        esme = Esme()
        await esme.connect(sim.port)
        status = (await esme.bind()).response.status
        await esme.close()
        return status

    assert run(attempt()) == CommandStatus.ESME_RBINDFAIL
    wait_for(lambda: run(attempt()) == CommandStatus.ESME_ROK, timeout=10, what="binds to be accepted again")


def test_mo_injection_reaches_the_transceiver(sim: SimProcess) -> None:
    async def scenario() -> DeliverSm:
        esme = Esme()
        await esme.connect(sim.port)
        await esme.bind()
        await asyncio.to_thread(
            sim.control,
            op="mo",
            system_id="test",
            source="905321234567",
            dest="ULAK",
            text="EVET, kampanyaya katılıyorum ş",
        )
        await async_wait_for(lambda: esme.requests, what="the MO")
        await esme.close()
        pdu = esme.requests[0]
        assert isinstance(pdu, DeliverSm)
        return pdu

    mo = run(scenario())
    assert not mo.esm_class & 0x04
    assert mo.source_addr == "905321234567"
    text = decode_user_data(mo.short_message, data_coding=mo.data_coding, esm_class=mo.esm_class).text
    assert text == "EVET, kampanyaya katılıyorum ş"


@pytest.mark.sim_args("--dlr-before-resp-rate", "1.0", "--duplicate-dlr-rate", "0.0")
def test_receipt_can_overtake_its_submit_sm_resp(sim: SimProcess) -> None:
    async def scenario() -> list[object]:
        esme = Esme()
        await esme.connect(sim.port)
        await esme.bind()
        await esme.submit(submits("x", 5))
        await esme.close()
        return esme.events

    events = run(scenario())
    order = []
    for e in events:
        pdu = getattr(e, "pdu", None) or getattr(e, "response", None)
        if isinstance(pdu, DeliverSm):
            order.append(("receipt", parse_receipt(pdu).message_id))  # type: ignore[union-attr]
        elif isinstance(pdu, SubmitSmResp):
            order.append(("resp", pdu.message_id))
    assert len(order) == 10
    for i in range(0, 10, 2):
        assert order[i][0] == "receipt"
        assert order[i + 1] == ("resp", order[i][1])


@pytest.mark.sim_args("--duplicate-dlr-rate", "1.0")
def test_duplicate_receipts(sim: SimProcess) -> None:
    async def scenario() -> list[DeliverSm]:
        esme = Esme()
        await esme.connect(sim.port)
        await esme.bind()
        await esme.submit(submits("x", 20))
        await async_wait_for(lambda: len(esme.receipts()) >= 40, what="40 receipts")
        await esme.close()
        return esme.receipts()

    receipts = run(scenario())
    ids = Counter(parse_receipt(r).message_id for r in receipts)  # type: ignore[union-attr]
    assert len(ids) == 20
    assert set(ids.values()) == {2}


@pytest.mark.sim_args("--enquire-link-interval", "0.3")
def test_simulator_sends_enquire_link_and_drops_a_silent_peer(sim: SimProcess) -> None:
    async def scenario() -> tuple[int, bool]:
        esme = Esme(answer_enquire_link=False)
        await esme.connect(sim.port)
        await esme.bind()
        await async_wait_for(lambda: esme.closed, timeout=15, what="the simulator to drop a silent peer")
        return sum(isinstance(p, EnquireLink) for p in esme.requests), esme.closed is not None

    probes, closed = run(scenario())
    assert probes >= 1
    assert closed


@pytest.mark.parametrize("concat", [Concat.SAR, Concat.PAYLOAD, Concat.UDH16])
def test_record_reassembles_every_concatenation_style(sim: SimProcess, concat: Concat) -> None:
    async def scenario() -> None:
        esme = Esme()
        await esme.connect(sim.port)
        await esme.bind()
        await esme.submit(submits(TURKISH * 3, 2, concat=concat, registered=0))
        await esme.close()

    run(scenario())
    records = sim.records()
    for dst in ("905300000000", "905300000001"):
        mine = [r for r in records if r["dst"] == dst]
        assert "".join(r["text"] for r in mine) == TURKISH * 3
        if concat is Concat.PAYLOAD:
            assert len(mine) == 1 and mine[0]["payload"]
        else:
            assert [r["concat"][2] for r in mine] == list(range(1, len(mine) + 1))


def test_stats_summary_on_exit(sim: SimProcess) -> None:
    async def scenario() -> None:
        esme = Esme()
        await esme.connect(sim.port)
        await esme.bind()
        await esme.submit(submits("x", 25))
        await async_wait_for(lambda: len(esme.receipts()) >= 25, what="receipts")
        await asyncio.sleep(0.05)
        await esme.close()

    run(scenario())
    stats = sim.stop()
    assert stats["submit_sm"] == stats["submit_sm_accepted"] == 25
    assert stats["receipts"] == {ReceiptStatus.DELIVRD.value: 25}
    assert stats["deliver_sm_resp"] == 25


def test_unacknowledged_receipts_are_delivered_again_after_reconnect(sim: SimProcess) -> None:
    async def scenario() -> tuple[set[str], set[str]]:
        first = Esme(answer_receipts=False)
        await first.connect(sim.port)
        await first.bind()
        responses = await first.submit(submits("x", 5))
        await async_wait_for(lambda: len(first.receipts()) >= 5, what="5 unanswered receipts")
        await first.close()
        second = Esme()
        await second.connect(sim.port)
        await second.bind()
        await async_wait_for(lambda: len(second.receipts()) >= 5, what="the receipts again")
        await second.close()
        ids = {r.response.message_id for r in responses}  # type: ignore[union-attr]
        return ids, {parse_receipt(r).message_id for r in second.receipts()}  # type: ignore[union-attr]

    acked, redelivered = run(scenario())
    assert redelivered == acked


def test_accounts_from_the_environment_stay_off_the_command_line(tmp_path: Path) -> None:
    from api.cli.stack import start_simulator

    process, port = start_simulator(tmp_path, accounts={"acme": "s3cr3tpw"})
    try:
        assert b"s3cr3tpw" not in Path(f"/proc/{process.pid}/cmdline").read_bytes()

        async def scenario() -> list[int]:
            statuses = []
            for password in ("wrong", "s3cr3tpw"):
                esme = Esme()
                await esme.connect(port)
                statuses.append((await esme.bind("acme", password)).response.status)
                await esme.close()
            return statuses

        assert run(scenario()) == [CommandStatus.ESME_RINVPASWD, CommandStatus.ESME_ROK]
    finally:
        process.terminate()
        process.wait(timeout=10)
