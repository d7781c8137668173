#!/usr/bin/env python3
"""A load-generating ESME on Ulak's sans-IO session: N binds, a window each, receipts awaited.

Used by ``bench_smsc.py`` to measure the simulator, and as the reference "plain asyncio client with
struct-packed PDUs" that the dispatch core is compared against. Prints one JSON line of results.

    python scripts/bench/smpp_load.py --port 2775 --messages 200000 --binds 2 --window 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from typing import cast

from ulak.smpp.pdu import BindTransceiver, DeliverSm, DeliverSmResp, EnquireLinkResp, SubmitSm, SubmitSmResp
from ulak.smpp.receipt import is_receipt
from ulak.smpp.session import ProtocolError, RequestReceived, ResponseReceived, Role, Session, State


class Totals:
    """Shared by all binds: an SMSC may route a receipt to any bind of the account."""

    def __init__(self, messages: int, receipts: bool, done: asyncio.Future[None]) -> None:
        self.messages = messages
        self.want_receipts = receipts
        self.acked = 0
        self.failed = 0
        self.receipts = 0
        self.done = done

    def check(self) -> None:
        if (
            self.acked + self.failed == self.messages
            and (not self.want_receipts or self.receipts >= self.acked)
            and not self.done.done()
        ):
            self.done.set_result(None)


class LoadClient(asyncio.Protocol):
    def __init__(self, *, quota: int, window: int, text: bytes, totals: Totals):
        self.session = Session(Role.ESME, window=window)
        self.quota = quota
        self.sent = 0
        self.totals = totals
        self.want_receipts = totals.want_receipts
        self.text = text
        self.done = totals.done
        self.bound = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports (Ray runs async actors on uvloop when it is installed) do not
        # subclass asyncio.Transport, so no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost: {exc}"))

    def bind(self, system_id: str, password: str) -> None:
        assert self.transport is not None
        self.transport.write(self.session.send(BindTransceiver(system_id=system_id, password=password)))

    def pump(self) -> None:
        session = self.session
        n = min(session.window_available, self.quota - self.sent)
        if n <= 0:
            return
        registered = 1 if self.want_receipts else 0
        out = []
        for _ in range(n):
            self.sent += 1
            pdu = SubmitSm(
                source_addr_ton=5,
                source_addr="ULAK",
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=f"90532{self.sent:07d}",
                registered_delivery=registered,
                short_message=self.text,
            )
            out.append(session.send(pdu))
        assert self.transport is not None
        self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        session = self.session
        session.receive_data(data)
        out: list[bytes] = []
        for event in session.events():
            if type(event) is ResponseReceived:
                resp = event.response
                if type(resp) is SubmitSmResp:
                    if resp.status == 0:
                        self.totals.acked += 1
                    else:
                        self.totals.failed += 1
                elif session.state is State.BOUND_TRX and not self.bound.done():
                    self.bound.set_result(None)
            elif type(event) is RequestReceived:
                pdu = event.pdu
                if type(pdu) is DeliverSm:
                    if is_receipt(pdu):
                        self.totals.receipts += 1
                    out.append(session.send(DeliverSmResp(sequence=pdu.sequence)))
                else:
                    out.append(session.send(EnquireLinkResp(sequence=pdu.sequence)))
            elif type(event) is ProtocolError:
                raise RuntimeError(f"protocol error: {event}")
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        if session.state is State.BOUND_TRX:
            self.pump()
            self.totals.check()


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    per_bind = [
        args.messages // args.binds + (1 if i < args.messages % args.binds else 0) for i in range(args.binds)
    ]
    text = args.text.encode("ascii")
    clients: list[LoadClient] = []
    totals = Totals(args.messages, not args.no_receipts, loop.create_future())
    for quota in per_bind:
        _, client = await loop.create_connection(
            lambda q=quota: LoadClient(quota=q, window=args.window, text=text, totals=totals),
            args.host,
            args.port,
        )
        client.bind(args.system_id, args.password)
        await asyncio.wait_for(client.bound, 10)
        clients.append(client)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for client in clients:
        client.pump()
    await asyncio.wait_for(totals.done, args.timeout)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    return {
        "messages": args.messages,
        "binds": args.binds,
        "window": args.window,
        "acked": totals.acked,
        "failed": totals.failed,
        "receipts": totals.receipts,
        "seconds": round(elapsed, 3),
        "msgs_per_second": round(args.messages / elapsed),
        "client_cpu_seconds": round(cpu, 3),
        "client_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--system-id", default="bench")
    p.add_argument("--password", default="bench")
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--binds", type=int, default=1)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--text", default="Ulak benchmark message: kampanya %20 indirim, detaylar icin tiklayin")
    p.add_argument("--no-receipts", action="store_true")
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
