#!/usr/bin/env python3
"""Ulak's SMSC simulator: a real SMPP 3.4 server over TCP for tests, the demo and benchmarks.

It speaks through Ulak's own sans-IO session (``ulak.smpp``) and offers what an operator's SMSC does,
plus the faults we need to test against:

* accounts with passwords (wrong password → ESME_RINVPASWD, unknown system_id → ESME_RINVSYSID);
* a per-bind cap in submit_sm per second over a 1 s sliding window (→ ESME_RTHROTTLED), and an
  optional ESME_RMSGQFUL rate;
* errors by destination prefix (e.g. ESME_RINVDSTADR) and by rate;
* delivery receipts after a delay with an outcome mix (DELIVRD/UNDELIV/EXPIRED/REJECTD), as TLVs, as
  text, or both; message ids in hex or decimal, with the receipt optionally in the other radix or case;
  receipts sent *before* their submit_sm_resp, and duplicate receipts, at configurable rates;
* MO messages and control commands through a JSON-lines control port;
* enquire_link both ways; dropping a connection after N PDUs; refusing binds for a while;
* a JSONL record of every accepted submit_sm and a ``--stats`` summary (JSON) on exit.

Run ``python scripts/smsc_sim.py --help``. With ``--port 0`` it picks a free port and prints
``listening on HOST:PORT`` (and writes ``--port-file``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import signal
import struct
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from ulak.smpp.codec import decode, encode, short_message_ends
from ulak.smpp.constants import MAX_PDU_SIZE, CommandId, CommandStatus, Tag, status_name
from ulak.smpp.errors import PduError
from ulak.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm,
    Unbind,
    UnbindResp,
    reply_to,
)
from ulak.smpp.receipt import STATUS_TO_STATE, ReceiptStatus, format_receipt_text
from ulak.smpp.session import (
    ProtocolError,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
    State,
)
from ulak.text.alphabet import TURKISH, alphabet
from ulak.text.plan import DATA_CODING_DEFAULT
from ulak.text.udh import decode_user_data

_OK = int(CommandStatus.ESME_ROK)
_THROTTLED = int(CommandStatus.ESME_RTHROTTLED)
_MSGQFUL = int(CommandStatus.ESME_RMSGQFUL)
_SUBMIT_SM = int(CommandId.SUBMIT_SM)
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_TAG_RECEIPTED_MESSAGE_ID = int(Tag.RECEIPTED_MESSAGE_ID)
_TAG_MESSAGE_STATE = int(Tag.MESSAGE_STATE)
_TAG_NETWORK_ERROR_CODE = int(Tag.NETWORK_ERROR_CODE)
_STATE = {status: int(state) for status, state in STATUS_TO_STATE.items()}
_RESP_HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_TLV_U8 = struct.Struct(">HHB")
_RECEIPT_SEQ_FIRST = 0x40000000
_json_str = json.JSONEncoder(ensure_ascii=False).encode
_SUBMITTING = (State.BOUND_TX, State.BOUND_TRX)
_RECEIVING = (State.BOUND_RX, State.BOUND_TRX)


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 2775
    accounts: dict[str, str] | None = None  # None: any system_id/password binds
    # Per account, the networks its binds may come from (as operators whitelist source addresses);
    # an account not named here binds from anywhere.
    allow: dict[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = field(default_factory=dict)
    tps: float | None = None  # per-bind cap on submit_sm over a sliding 1 s window
    account_tps: float | None = None  # the same cap counted over all binds of an account
    fixed_second: bool = False  # count the caps per calendar second instead of a sliding one
    msgqful_rate: float = 0.0
    reject_prefixes: dict[str, int] = field(default_factory=dict)
    error_rate: float = 0.0
    error_status: int = int(CommandStatus.ESME_RSUBMITFAIL)
    dlr_delay: tuple[float, float] = (0.0, 0.0)
    dlr_mix: tuple[tuple[ReceiptStatus, float], ...] = ((ReceiptStatus.DELIVRD, 1.0),)
    dlr_format: str = "both"  # text | tlv | both
    id_format: str = "hex"  # hex | dec
    id_start: int = 1  # the first message id
    dlr_id_format: str = "same"  # same | hex | dec
    dlr_id_upper: bool = False
    dlr_before_resp_rate: float = 0.0
    duplicate_dlr_rate: float = 0.0
    enquire_link_interval: float = 30.0
    drop_after: int | None = None  # close each connection after it has received N PDUs
    refuse_binds_for: float = 0.0  # seconds from start during which binds fail with ESME_RBINDFAIL
    window: int = 100  # deliver_sm the simulator keeps outstanding per connection
    record: Path | None = None
    record_sync: bool = False  # flush the record before answering: a killed SMSC loses none it answered
    seed: int | None = None
    packed: bool = False


@dataclass(slots=True)
class PendingReceipt:
    due: float
    message_id: str
    source: str  # the original destination: the receipt comes *from* the handset
    dest: str
    status: ReceiptStatus
    submit_date: str
    text: str


class Stats:
    """Counters the simulator reports (``--stats``, the control port's ``stats`` command)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.receipts: Counter[str] = Counter()
        self.peers: dict[str, Counter[str]] = {}  # per system_id, binds accepted per source address
        self.refused_peers: dict[str, Counter[str]] = {}  # the same for binds refused by --allow
        self.first_submit: float | None = None
        self.last_submit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        elapsed = (self.last_submit - self.first_submit) if self.first_submit and self.last_submit else 0.0
        accepted = self.counts["submit_sm_accepted"]
        return {
            **dict(self.counts),
            "rejected": dict(self.rejected),
            "receipts": dict(self.receipts),
            "bind_peers": {k: dict(v) for k, v in self.peers.items()},
            "refused_peers": {k: dict(v) for k, v in self.refused_peers.items()},
            "submit_span_seconds": round(elapsed, 6),
            "accepted_per_second": round(accepted / elapsed, 1) if elapsed > 0 else None,
        }


def _mo_encoding(text: str, data_coding: int | None) -> tuple[bytes, int, bytes]:
    """An MO's body, data_coding and national shift IEs: GSM 03.38, else with the Turkish single
    shift table, else UCS-2 (or Latin-1 with ``data_coding`` 3)."""
    if data_coding == 3:
        return text.encode("latin-1"), 3, b""
    if (septets := alphabet().to_septets(text)) is not None:
        return septets, DATA_CODING_DEFAULT, b""
    if (tr := alphabet(0, TURKISH).to_septets(text)) is not None:
        return tr, DATA_CODING_DEFAULT, b"\x24\x01\x01"
    return text.encode("utf-16-be"), 0x08, b""


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.random = random.Random(config.seed)
        self.connections: set[SmscConnection] = set()
        self.receipts: dict[str, deque[PendingReceipt]] = {}  # per system_id
        self.mo_queue: dict[str, deque[DeliverSm]] = {}  # per system_id: MO to deliver (again)
        self.account_windows: dict[str, deque[float]] = {}  # per system_id: accept times (account_tps)
        self.started_at = time.monotonic()
        self.refuse_binds_until = self.started_at + config.refuse_binds_for
        self._next_id = config.id_start
        self._stamp_second = 0
        self._stamp = ""
        self._record: IO[str] | None = None
        self._server: asyncio.Server | None = None
        self._control: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._mix_statuses = [s for s, _ in config.dlr_mix]
        self._rewrite_ids = config.dlr_id_upper or config.dlr_id_format not in ("same", config.id_format)
        self._receipt_text = config.dlr_format in ("text", "both")
        self._receipt_tlvs = config.dlr_format in ("tlv", "both")
        self._mix_weights = [w for _, w in config.dlr_mix]

    # -------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> int:
        if self.config.record is not None:
            self._record = self.config.record.open("a", encoding="utf-8", buffering=1 << 16)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SmscConnection(self), self.config.host, self.config.port, backlog=256
        )
        self._tasks.append(asyncio.create_task(self._pump_receipts()))
        self._tasks.append(asyncio.create_task(self._keepalive()))
        return int(self._server.sockets[0].getsockname()[1])

    async def start_control(self, port: int) -> int:
        self._control = await asyncio.start_server(self._handle_control, "127.0.0.1", port)
        return int(self._control.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for server in (self._server, self._control):
            if server is not None:
                server.close()
        for conn in list(self.connections):
            conn.transport_close()
        if self._record is not None:
            self._record.flush()
            self._record.close()
            self._record = None

    def flush_record(self) -> None:
        if self._record is not None:
            self._record.flush()

    # --------------------------------------------------------------------------------------- submits

    def stamp(self) -> str:
        """YYMMDDhhmm for receipt texts, formatted once per second rather than once per message."""
        now = int(time.time())
        if now != self._stamp_second:
            self._stamp_second = now
            self._stamp = time.strftime("%y%m%d%H%M", time.localtime(now))
        return self._stamp

    def next_message_id(self) -> str:
        n = self._next_id
        self._next_id += 1
        return f"{n:x}" if self.config.id_format == "hex" else str(n)

    def receipt_id(self, message_id: str) -> str:
        fmt = self.config.dlr_id_format
        value = message_id
        if fmt == "dec" and self.config.id_format == "hex":
            value = str(int(message_id, 16))
        elif fmt == "hex" and self.config.id_format == "dec":
            value = f"{int(message_id):x}"
        return value.upper() if self.config.dlr_id_upper else value

    def record_submit(self, conn: SmscConnection, pdu: Submit, message_id: str, now: float) -> None:
        if self._record is None:
            return
        try:
            decoded = decode_user_data(
                pdu.body, data_coding=pdu.data_coding, esm_class=pdu.esm_class, packed=self.config.packed
            )
            text: str | None = decoded.text
            udh = decoded.udh.hex()
            concat = decoded.concat
        except (ValueError, UnicodeDecodeError):
            text, udh, concat = None, "", None
        if pdu.sar is not None:
            concat = pdu.sar
        # Written by hand rather than json.dumps(dict): the generic encoder cost ~20 µs a message. Every
        # string the peer controls goes through the JSON string encoder.
        enc = _json_str
        self._record.write(
            f'{{"t": {time.time():.6f}, "mono": {now:.6f}, "system_id": {enc(conn.system_id)}, '
            f'"conn": {conn.conn_id}, "peer": "{conn.peer}", "message_id": "{message_id}", '
            f'"src": {enc(pdu.source_addr)}, '
            f'"dst": {enc(pdu.destination_addr)}, "dc": {pdu.data_coding}, "esm": {pdu.esm_class}, '
            f'"udh": "{udh}", "concat": {"null" if concat is None else list(concat)}, '
            f'"payload": {"true" if pdu.payload else "false"}, '
            f'"text": {"null" if text is None else enc(text)}, '
            f'"raw": {"null" if text is not None else chr(34) + pdu.body.hex() + chr(34)}}}\n'
        )

    def schedule_receipt(self, conn: SmscConnection, pdu: Submit, message_id: str, now: float) -> None:
        if not pdu.registered_delivery & 0x03:
            return
        if len(self._mix_statuses) == 1:
            status = self._mix_statuses[0]
        else:
            status = self.random.choices(self._mix_statuses, self._mix_weights)[0]
        if pdu.registered_delivery & 0x03 == 2 and status is ReceiptStatus.DELIVRD:
            return  # receipt on failure only
        low, high = self.config.dlr_delay
        delay = low if high <= low else self.random.uniform(low, high)
        receipt = PendingReceipt(
            now + delay, message_id, pdu.destination_addr, pdu.source_addr, status, self.stamp(), ""
        )
        queue = self.receipts.setdefault(conn.system_id, deque())
        copies = 2 if self.random.random() < self.config.duplicate_dlr_rate else 1
        for _ in range(copies):
            queue.append(receipt)

    def receipt_bytes(self, r: PendingReceipt, done_date: str, sequence: int) -> bytes:
        """The deliver_sm for a receipt, encoded from a template (checked against the codec in tests)."""
        rid = (self.receipt_id(r.message_id) if self._rewrite_ids else r.message_id).encode("ascii")
        delivered = r.status is ReceiptStatus.DELIVRD
        text = b""
        if self._receipt_text:
            text = format_receipt_text(
                message_id=rid.decode(),
                status=r.status,
                error="000" if delivered else "001",
                submit_date=r.submit_date,
                done_date=done_date,
                text=r.text,
            ).encode("ascii")
        body = b"\0\x01\x01%b\0\x05\x00%b\0\x04\x00\x00\0\0\x00\x00\x00\x00%c%b" % (
            r.source.encode("latin-1"),
            r.dest.encode("latin-1"),
            len(text),
            text,
        )
        if self._receipt_tlvs:
            body += _TLV_HEAD.pack(_TAG_RECEIPTED_MESSAGE_ID, len(rid) + 1) + rid + b"\0"
            body += _TLV_U8.pack(_TAG_MESSAGE_STATE, 1, _STATE[r.status])
            body += _TLV_HEAD.pack(_TAG_NETWORK_ERROR_CODE, 3) + (
                b"\x03\x00\x00" if delivered else b"\x03\x00\x01"
            )
        return _RESP_HEADER.pack(16 + len(body), _DELIVER_SM, 0, sequence) + body

    async def _pump_receipts(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            if any(self.mo_queue.values()):
                self._deliver_mo()
            for system_id, queue in self.receipts.items():
                if queue and queue[0].due <= now:
                    self._deliver(system_id, queue, now)

    def _deliver(self, system_id: str, queue: deque[PendingReceipt], now: float) -> None:
        receivers = [
            c for c in self.connections if c.system_id == system_id and c.session.state in _RECEIVING
        ]
        for conn in receivers:
            if not queue or queue[0].due > now:
                return
            out = []
            stamp = self.stamp()
            sent: Counter[ReceiptStatus] = Counter()
            free = conn.receipt_window
            while queue and queue[0].due <= now and free > 0:
                receipt = queue.popleft()
                out.append(conn.send_receipt(receipt, stamp))
                sent[receipt.status] += 1
                free -= 1
            for status, n in sent.items():
                self.stats.receipts[status.value] += n
            if out:
                conn.write(b"".join(out))

    # ------------------------------------------------------------------------------------- keepalive

    async def _keepalive(self) -> None:
        interval = self.config.enquire_link_interval
        while True:
            await asyncio.sleep(min(interval / 2, 1.0))
            for conn in list(self.connections):
                session = conn.session
                if session.state.is_bound and session.idle_for() > interval * 3:
                    conn.transport_close()  # peer dead: no PDU and no enquire_link_resp for 3 intervals
                elif session.state.is_bound and session.idle_for() >= interval and session.window_available:
                    conn.write(session.send(EnquireLink()))
                    self.stats.counts["enquire_link_sent"] += 1

    # --------------------------------------------------------------------------------------- control

    def inject_mo(
        self,
        *,
        system_id: str,
        source: str,
        dest: str,
        text: str,
        parts: int = 1,
        concat: str = "udh8",
        order: list[int] | None = None,
        reference: int | None = None,
        data_coding: int | None = None,
    ) -> int:
        """Queue an MO (a reply) for *system_id*'s receiving binds: GSM 03.38, else with the Turkish
        single shift table, else UCS-2 (or Latin-1 with ``data_coding`` 3); in *parts* parts
        concatenated by an 8- or 16-bit UDH reference or by SAR TLVs (*concat*), sent in *order*
        (1-based sequence numbers). Each is delivered again on a later connection until it is
        answered, as an SMSC does. Returns how many deliver_sm were queued."""
        body, dc, shift = _mo_encoding(text, data_coding)
        if parts < 1 or parts > 255:
            raise ValueError("parts must be 1 to 255")
        unit = 2 if dc == 0x08 else 1
        size = -(-len(body) // unit // parts) * unit  # each piece's length, whole characters
        pieces = [body[i * size : (i + 1) * size] for i in range(parts)]
        ref = (
            self.random.randrange(1 << 16 if concat == "udh16" else 1 << 8)
            if reference is None
            else reference
        )
        order = order or list(range(1, parts + 1))
        if sorted(order) != list(range(1, parts + 1)):
            raise ValueError(f"order must list each of 1..{parts} once")
        queue = self.mo_queue.setdefault(system_id, deque())
        for seq in order:
            ies, sar = shift, None
            if parts > 1 and concat == "udh8":
                ies = bytes((0x00, 3, ref & 0xFF, parts, seq)) + ies
            elif parts > 1 and concat == "udh16":
                ies = bytes((0x08, 4, ref >> 8 & 0xFF, ref & 0xFF, parts, seq)) + ies
            elif parts > 1 and concat == "sar":
                sar = (ref, parts, seq)
            elif parts > 1:
                raise ValueError(f"unknown concat {concat!r}; known: udh8, udh16, sar")
            udh = bytes((len(ies),)) + ies if ies else b""
            queue.append(
                DeliverSm(
                    source_addr_ton=1,
                    source_addr_npi=1,
                    source_addr=source,
                    dest_addr_ton=5,
                    destination_addr=dest,
                    esm_class=0x40 if udh else 0,
                    data_coding=dc,
                    short_message=udh + pieces[seq - 1],
                    sar_msg_ref_num=sar[0] if sar else None,
                    sar_total_segments=sar[1] if sar else None,
                    sar_segment_seqnum=sar[2] if sar else None,
                )
            )
        self._deliver_mo()
        return len(order)

    def _deliver_mo(self) -> None:
        """Send queued MO on receiving connections with room in their window."""
        for system_id, queue in self.mo_queue.items():
            if not queue:
                continue
            for conn in self.connections:
                if conn.system_id != system_id or conn.session.state not in _RECEIVING:
                    continue
                while queue and conn.session.window_available > 0:
                    pdu = queue.popleft()
                    data = conn.session.send(pdu, context="mo")
                    conn.mo_out[int.from_bytes(data[12:16], "big")] = pdu
                    conn.write(data)
                    self.stats.counts["mo_sent"] += 1

    async def _handle_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    reply = self._control_command(json.loads(line))
                except Exception as exc:  # the control port reports every failure to its caller
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    def _control_command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd.get("op")
        if op == "stats":
            self.flush_record()
            return {"ok": True, "stats": self.stats.as_dict()}
        if op == "mo":
            queued = self.inject_mo(
                system_id=cmd["system_id"],
                source=cmd["source"],
                dest=cmd["dest"],
                text=cmd["text"],
                parts=int(cmd.get("parts", 1)),
                concat=cmd.get("concat", "udh8"),
                order=cmd.get("order"),
                reference=cmd.get("reference"),
                data_coding=cmd.get("data_coding"),
            )
            return {"ok": True, "queued": queued}
        if op == "drop":
            n = len(self.connections)
            for conn in list(self.connections):
                conn.transport_close()
            return {"ok": True, "dropped": n}
        if op == "refuse_binds":
            self.refuse_binds_until = time.monotonic() + float(cmd["seconds"])
            return {"ok": True}
        if op == "set":
            for key, value in cmd.get("values", {}).items():
                if key not in (
                    "tps",
                    "msgqful_rate",
                    "error_rate",
                    "drop_after",
                    "dlr_before_resp_rate",
                    "duplicate_dlr_rate",
                ):
                    raise KeyError(f"{key} cannot be changed at run time")
                setattr(self.config, key, value)
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}; known: stats, mo, drop, refuse_binds, set")


class SmscConnection(asyncio.Protocol):
    """One ESME connection, driven by a sans-IO SMSC-role session."""

    _ids = 0

    def __init__(self, sim: Simulator) -> None:
        SmscConnection._ids += 1
        self.conn_id = SmscConnection._ids
        self.sim = sim
        self.session = Session(Role.SMSC, window=sim.config.window)
        self.system_id = ""
        self.peer = ""  # the address it binds from (an IP address: safe in the record unescaped)
        self.transport: asyncio.Transport | None = None
        self.pdus_received = 0
        self.window: deque[float] = deque()  # accept times of the last second's submits (TPS cap)
        self.buffer = bytearray()
        # Receipts are sent from byte templates with sequence numbers of their own (from 2**30 up, far
        # from the session's), and tracked here until their deliver_sm_resp arrives.
        self.receipts_out: dict[int, PendingReceipt] = {}
        self.receipt_seq = _RECEIPT_SEQ_FIRST
        self.mo_out: dict[int, DeliverSm] = {}  # MO sent on this connection, not answered yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports (Ray runs async actors on uvloop when it is installed) do not
        # subclass asyncio.Transport, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)
        self.sim.connections.add(self)
        self.sim.stats.counts["connections"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.sim.connections.discard(self)
        self.session.close()
        self.transport = None
        if self.receipts_out:
            # Like an SMSC, keep receipts the ESME never acknowledged and deliver them again later.
            queue = self.sim.receipts.setdefault(self.system_id, deque())
            queue.extendleft(reversed(list(self.receipts_out.values())))
            self.receipts_out.clear()
        if self.mo_out:  # the same for replies: unanswered, they go again
            self.sim.mo_queue.setdefault(self.system_id, deque()).extendleft(
                reversed(list(self.mo_out.values()))
            )
            self.sim.stats.counts["mo_redelivered"] += len(self.mo_out)
            self.mo_out.clear()

    def transport_close(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # like a network failure: nothing queued is sent

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if self.sim.config.record_sync:
                self.sim.flush_record()  # what is answered is on record, as in an SMSC's database
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        """Frame the stream; submit_sm and deliver_sm_resp take the lean path, the rest the session.

        The two PDUs that carry the load are handled from their bytes (see ``peek_submit``): building
        and encoding full PDU dataclasses for them cost half the simulator's CPU. Anything unusual (not
        bound, malformed, unknown sequence) goes through the sans-IO session, which answers as SMPP
        prescribes, so the lean path changes speed, not behaviour.
        """
        buf = self.buffer
        buf += data
        session = self.session
        session.last_received_at = now = time.monotonic()
        out: list[bytes] = []
        pos, end = 0, len(buf)
        while end - pos >= 16:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < 16 or length > MAX_PDU_SIZE:
                self._to_session(bytes(buf[pos:]), out)  # the session reports the corrupt length
                buf.clear()
                return
            if pos + length > end:
                break
            frame = bytes(buf[pos : pos + length])
            pos += length
            command_id = int.from_bytes(frame[4:8], "big")
            if command_id == _DELIVER_SM_RESP:
                receipt = self.receipts_out.pop(int.from_bytes(frame[12:16], "big"), None)
                if receipt is not None:
                    self.sim.stats.counts["deliver_sm_resp"] += 1
                    continue
            elif command_id == _SUBMIT_SM and session.state in _SUBMITTING:
                submit = peek_submit(frame)
                if submit is not None:
                    if self._count_request(out):
                        return
                    self._on_submit(submit, out, now)
                    continue
            if not self._to_session(frame, out):
                return
        del buf[:pos]
        if out:
            self.write(b"".join(out))

    def _count_request(self, out: list[bytes]) -> bool:
        """Count a request PDU; True if the drop-after fault fires (the connection is gone)."""
        self.pdus_received += 1
        drop_after = self.sim.config.drop_after
        if drop_after is not None and self.pdus_received >= drop_after:
            self.sim.stats.counts["connections_dropped"] += 1
            if out:
                self.write(b"".join(out))
            self.transport_close()
            return True
        return False

    def _to_session(self, frame: bytes, out: list[bytes]) -> bool:
        """Let the session handle *frame*; False once the connection is closing."""
        session = self.session
        session.receive_data(frame)
        sim = self.sim
        for event in session.events():
            if type(event) is RequestReceived:
                if self._count_request(out):
                    return False
                pdu = event.pdu
                if type(pdu) is SubmitSm:
                    self._on_submit(Submit.of(pdu), out, time.monotonic())
                elif type(pdu) is EnquireLink:
                    out.append(session.send(EnquireLinkResp(sequence=pdu.sequence)))
                elif isinstance(pdu, (BindTransmitter, BindReceiver, BindTransceiver)):
                    self._on_bind(pdu, out)
                elif type(pdu) is Unbind:
                    out.append(session.send(UnbindResp(sequence=pdu.sequence)))
                    self.write(b"".join(out))
                    if self.transport is not None:
                        self.transport.close()
                    return False
            elif type(event) is ResponseReceived:
                if type(event.response) is DeliverSmResp:
                    sim.stats.counts["deliver_sm_resp"] += 1
                    if self.mo_out.pop(event.response.sequence, None) is not None:
                        sim.stats.counts["mo_answered"] += 1
            elif type(event) is ProtocolError:
                sim.stats.counts["protocol_errors"] += 1
                if event.reply is not None:
                    out.append(encode(event.reply))
                if event.fatal:
                    self.write(b"".join(out))
                    if self.transport is not None:
                        self.transport.close()
                    return False
        return True

    def send_receipt(self, receipt: PendingReceipt, done_date: str) -> bytes:
        seq = self.receipt_seq
        self.receipt_seq = _RECEIPT_SEQ_FIRST if seq >= 0x7FFFFFFF else seq + 1
        self.receipts_out[seq] = receipt
        return self.sim.receipt_bytes(receipt, done_date, seq)

    @property
    def receipt_window(self) -> int:
        return self.sim.config.window - len(self.receipts_out)

    def _on_bind(self, pdu: BindTransmitter | BindReceiver | BindTransceiver, out: list[bytes]) -> None:
        sim = self.sim
        resp_cls = type(reply_to(pdu.command_id, pdu.sequence, 0))
        status = CommandStatus.ESME_ROK
        accounts = sim.config.accounts
        if time.monotonic() < sim.refuse_binds_until:
            status = CommandStatus.ESME_RBINDFAIL
        elif accounts is not None and pdu.system_id not in accounts:
            status = CommandStatus.ESME_RINVSYSID
        elif accounts is not None and accounts[pdu.system_id] != pdu.password:
            status = CommandStatus.ESME_RINVPASWD
        peer = self.peer = self._peer()
        allowed = sim.config.allow.get(pdu.system_id)
        if status == CommandStatus.ESME_ROK and allowed is not None and not _allowed(peer, allowed):
            # An operator refuses a bind from an address it has not whitelisted.
            status = CommandStatus.ESME_RBINDFAIL
            sim.stats.refused_peers.setdefault(pdu.system_id, Counter())[peer] += 1
            sim.stats.counts["binds_refused_address"] += 1
        if status == CommandStatus.ESME_ROK:
            self.system_id = pdu.system_id
            sim.stats.counts["binds"] += 1
            sim.stats.peers.setdefault(pdu.system_id, Counter())[peer] += 1
        else:
            sim.stats.counts["binds_refused"] += 1
        out.append(self.session.send(resp_cls(sequence=pdu.sequence, status=status, system_id="ulaksim")))  # type: ignore[call-arg]

    def _peer(self) -> str:
        """The address this connection comes from ('' when the transport is gone)."""
        if self.transport is None:
            return ""
        peer = self.transport.get_extra_info("peername")
        return str(peer[0]) if peer else ""

    def _on_submit(self, submit: Submit, out: list[bytes], now: float) -> None:
        sim = self.sim
        cfg = sim.config
        stats = sim.stats
        stats.counts["submit_sm"] += 1
        status = _OK
        if cfg.tps is not None and _over_cap(self.window, now, cfg.tps, fixed=cfg.fixed_second):
            status = _THROTTLED
        account_window = None
        if cfg.account_tps is not None:
            account_window = sim.account_windows.setdefault(self.system_id, deque())
            if status == _OK and _over_cap(account_window, now, cfg.account_tps, fixed=cfg.fixed_second):
                status = _THROTTLED
        if status == _OK and cfg.msgqful_rate and sim.random.random() < cfg.msgqful_rate:
            status = _MSGQFUL
        if status == _OK and cfg.reject_prefixes:
            for prefix, code in cfg.reject_prefixes.items():
                if submit.destination_addr.startswith(prefix):
                    status = code
                    break
        if status == _OK and cfg.error_rate and sim.random.random() < cfg.error_rate:
            status = cfg.error_status
        if status != _OK:
            stats.rejected[status_name(status)] += 1
            out.append(_RESP_HEADER.pack(17, _SUBMIT_SM_RESP, status, submit.sequence) + b"\0")
            return
        if cfg.tps is not None:
            self.window.append(now)
        if account_window is not None:
            account_window.append(now)
        message_id = sim.next_message_id()
        stats.counts["submit_sm_accepted"] += 1
        if stats.first_submit is None:
            stats.first_submit = now
        stats.last_submit = now
        sim.record_submit(self, submit, message_id, now)
        mid = message_id.encode("ascii")
        resp = _RESP_HEADER.pack(17 + len(mid), _SUBMIT_SM_RESP, 0, submit.sequence) + mid + b"\0"
        if (
            cfg.dlr_before_resp_rate
            and sim.random.random() < cfg.dlr_before_resp_rate
            and self.session.state in _RECEIVING
            and self.receipt_window > 0
        ):
            # The receipt overtakes its own submit_sm_resp on the wire.
            stats.counts["receipts_before_resp"] += 1
            stamp = sim.stamp()
            receipt = PendingReceipt(
                now, message_id, submit.destination_addr, submit.source_addr, ReceiptStatus.DELIVRD, stamp, ""
            )
            out.append(self.send_receipt(receipt, stamp))
            stats.receipts[ReceiptStatus.DELIVRD.value] += 1
            out.append(resp)
            return
        out.append(resp)
        sim.schedule_receipt(self, submit, message_id, now)


def _over_cap(window: deque[float], now: float, cap: float, *, fixed: bool = False) -> bool:
    """Sliding one-second window (or, *fixed*, the calendar second *now* is in): drop what is
    older, then compare with the cap."""
    cutoff = float(int(now)) - 1e-9 if fixed else now - 1.0
    while window and window[0] <= cutoff:
        window.popleft()
    return len(window) >= cap


class Submit:
    """What the simulator needs of a submit_sm, read from its bytes (or from a decoded SubmitSm)."""

    __slots__ = (
        "body",
        "data_coding",
        "destination_addr",
        "esm_class",
        "payload",
        "registered_delivery",
        "sar",
        "sequence",
        "source_addr",
    )

    def __init__(  # noqa: PLR0917 - a plain record, built positionally on the hot path
        self,
        sequence: int,
        source_addr: str,
        destination_addr: str,
        esm_class: int,
        registered_delivery: int,
        data_coding: int,
        body: bytes,
        sar: tuple[int, int, int] | None = None,
        payload: bool = False,
    ) -> None:
        self.sequence = sequence
        self.source_addr = source_addr
        self.destination_addr = destination_addr
        self.esm_class = esm_class
        self.registered_delivery = registered_delivery
        self.data_coding = data_coding
        self.body = body
        self.sar = sar
        self.payload = payload

    @classmethod
    def of(cls, pdu: SubmitSm) -> Submit:
        sar = None
        if pdu.sar_msg_ref_num is not None:
            sar = (pdu.sar_msg_ref_num, pdu.sar_total_segments or 0, pdu.sar_segment_seqnum or 0)
        return cls(
            pdu.sequence,
            pdu.source_addr,
            pdu.destination_addr,
            pdu.esm_class,
            pdu.registered_delivery,
            pdu.data_coding,
            pdu.body,
            sar,
            pdu.message_payload is not None,
        )


def peek_submit(frame: bytes) -> Submit | None:
    """Read a submit_sm without building a PDU; None if it is not a plain, well-formed one.

    A submit_sm with TLVs is decoded by the full codec (still no session round trip); a malformed one
    returns None so the session answers it with the status SMPP prescribes.
    """
    ends = short_message_ends(frame)
    if ends is None:
        return None
    n = len(frame)
    p, q, r, u = ends
    sm_length = frame[u + 5]
    stop = u + 6 + sm_length
    if stop != n:
        if stop > n:
            return None
        try:
            pdu = decode(frame)
        except PduError:
            return None
        return Submit.of(pdu) if type(pdu) is SubmitSm else None
    return Submit(
        int.from_bytes(frame[12:16], "big"),
        frame[p + 3 : q].decode("latin-1"),
        frame[q + 3 : r].decode("latin-1"),
        frame[r + 1],
        frame[u + 1],
        frame[u + 3],
        frame[u + 6 : stop],
    )


# ------------------------------------------------------------------------------------------------- CLI


def _parse_mix(text: str) -> tuple[tuple[ReceiptStatus, float], ...]:
    mix = []
    for item in text.split(","):
        name, _, weight = item.partition("=")
        try:
            mix.append((ReceiptStatus(name.strip().upper()), float(weight or 1)))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad receipt mix item {item!r}: use STATUS=WEIGHT with STATUS one of "
                f"{', '.join(s.value for s in ReceiptStatus)}"
            ) from None
    return tuple(mix)


def _parse_status(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        name = text.upper() if text.upper().startswith("ESME_") else "ESME_" + text.upper()
        try:
            return int(CommandStatus[name])
        except KeyError:
            raise argparse.ArgumentTypeError(f"unknown command_status {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2775, help="0 picks a free port")
    p.add_argument("--port-file", type=Path, help="write the listening port here once ready")
    p.add_argument("--control-port", type=int, help="JSON-lines control port (0 = free port)")
    p.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="SYSTEM_ID:PASSWORD",
        help="accepted credentials (repeat; visible in ps: prefer --accounts-file or $ULAK_SIM_ACCOUNTS); "
        "none given = accept any",
    )
    p.add_argument(
        "--accounts-file",
        type=Path,
        help="accepted credentials, one SYSTEM_ID:PASSWORD a line (also $ULAK_SIM_ACCOUNTS, comma-separated)",
    )
    _behaviour_options(p)
    p.add_argument("--enquire-link-interval", type=float, default=30.0)
    p.add_argument("--drop-after", type=int, help="drop each connection after it sent N PDUs")
    p.add_argument("--refuse-binds-for", type=float, default=0.0, help="seconds of ESME_RBINDFAIL at start")
    p.add_argument("--window", type=int, default=100, help="deliver_sm outstanding per connection")
    p.add_argument("--record", type=Path, help="append every accepted submit_sm to this JSONL file")
    p.add_argument("--packed", action="store_true", help="GSM text arrives packed (for the record)")
    p.add_argument(
        "--record-sync",
        action="store_true",
        help="write the record out before answering, so that a killed simulator (SIGKILL) has on "
        "record every submit_sm it accepted",
    )
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="SYSTEM_ID=CIDR[,CIDR]",
        help="the networks an account's binds may come from (repeat per account); others get ESME_RBINDFAIL",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--stats", action="store_true", help="print a JSON stats summary on exit")
    p.add_argument("--stats-file", type=Path, help="write the JSON stats summary here on exit")
    return p


def _behaviour_options(p: argparse.ArgumentParser) -> None:
    """How the SMSC answers: its limits, its refusals and errors, and its receipts."""
    p.add_argument("--tps", type=float, help="per-bind submit_sm cap over a sliding 1 s window")
    p.add_argument("--account-tps", type=float, help="the same cap over all binds of one system_id")
    p.add_argument(
        "--fixed-second",
        action="store_true",
        help="count --tps and --account-tps per calendar second (as some SMSCs do), not a sliding one",
    )
    p.add_argument("--msgqful-rate", type=float, default=0.0, help="fraction answered ESME_RMSGQFUL")
    p.add_argument(
        "--reject-prefix",
        action="append",
        default=[],
        metavar="PREFIX[:STATUS]",
        help="reject destinations starting with PREFIX (default status ESME_RINVDSTADR)",
    )
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction rejected with --error-status")
    p.add_argument("--error-status", type=_parse_status, default=int(CommandStatus.ESME_RSUBMITFAIL))
    p.add_argument("--dlr-delay", default="0", metavar="SECONDS[:MAX]", help="receipt delay (or range)")
    p.add_argument(
        "--dlr-mix",
        type=_parse_mix,
        default=((ReceiptStatus.DELIVRD, 1.0),),
        metavar="DELIVRD=0.9,UNDELIV=0.05,...",
    )
    p.add_argument("--dlr-format", choices=["text", "tlv", "both"], default="both")
    p.add_argument("--id-format", choices=["hex", "dec"], default="hex")
    p.add_argument(
        "--id-start", type=int, default=1, help="first message id (a restarted SMSC must not reuse ids)"
    )
    p.add_argument("--dlr-id-format", choices=["same", "hex", "dec"], default="same")
    p.add_argument("--dlr-id-upper", action="store_true", help="receipt ids in upper case")
    p.add_argument("--dlr-before-resp-rate", type=float, default=0.0)
    p.add_argument("--duplicate-dlr-rate", type=float, default=0.0)


def _allowed(peer: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in n for n in networks)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    accounts = None
    items = list(args.account)
    if args.accounts_file is not None:
        items += [line.strip() for line in args.accounts_file.read_text().splitlines() if line.strip()]
    items += [i.strip() for i in os.environ.get("ULAK_SIM_ACCOUNTS", "").split(",") if i.strip()]
    if items:
        accounts = {}
        for item in items:
            system_id, sep, password = item.partition(":")
            if not sep:
                raise SystemExit(f"account {item.partition(':')[0]!r}: use SYSTEM_ID:PASSWORD")
            accounts[system_id] = password
    reject = {}
    for item in args.reject_prefix:
        prefix, _, code = item.partition(":")
        reject[prefix] = _parse_status(code) if code else int(CommandStatus.ESME_RINVDSTADR)
    allow = {}
    for item in args.allow:
        system_id, sep, networks = item.partition("=")
        try:
            if not sep or not networks:
                raise ValueError("no networks")
            allow[system_id] = tuple(ipaddress.ip_network(n.strip()) for n in networks.split(","))
        except ValueError as exc:
            raise SystemExit(f"--allow {item!r}: use SYSTEM_ID=CIDR[,CIDR] ({exc})") from None
    low, _, high = args.dlr_delay.partition(":")
    return SimConfig(
        allow=allow,
        host=args.host,
        port=args.port,
        accounts=accounts,
        tps=args.tps,
        account_tps=args.account_tps,
        fixed_second=args.fixed_second,
        msgqful_rate=args.msgqful_rate,
        reject_prefixes=reject,
        error_rate=args.error_rate,
        error_status=args.error_status,
        dlr_delay=(float(low), float(high or low)),
        dlr_mix=args.dlr_mix,
        dlr_format=args.dlr_format,
        id_format=args.id_format,
        id_start=args.id_start,
        dlr_id_format=args.dlr_id_format,
        dlr_id_upper=args.dlr_id_upper,
        dlr_before_resp_rate=args.dlr_before_resp_rate,
        duplicate_dlr_rate=args.duplicate_dlr_rate,
        enquire_link_interval=args.enquire_link_interval,
        drop_after=args.drop_after,
        refuse_binds_for=args.refuse_binds_for,
        window=args.window,
        record=args.record,
        record_sync=args.record_sync,
        seed=args.seed,
        packed=args.packed,
    )


async def serve(args: argparse.Namespace) -> Simulator:
    sim = Simulator(config_from_args(args))
    port = await sim.start()
    line = f"listening on {args.host}:{port}"
    if args.control_port is not None:
        control = await sim.start_control(args.control_port)
        line += f" control {args.host}:{control}"
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(f"{port}\n" + (f"{control}\n" if args.control_port is not None else ""))
        tmp.rename(args.port_file)
    print(line, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()
    return sim


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sim = asyncio.run(serve(args))
    summary = json.dumps(sim.stats.as_dict(), indent=2, sort_keys=True)
    if args.stats:
        print(summary, flush=True)
    if args.stats_file:
        args.stats_file.write_text(summary + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
