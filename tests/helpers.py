"""Test helpers: polling with a deadline, the simulator as a subprocess, and a small asyncio ESME."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr

from ulak import keys
from ulak.dispatch.ledger import MESSAGE_TTL
from ulak.redis_server import RedisServer, free_port
from ulak.settings import BindConfig, OperatorConfig, RayConfig, RedisConfig, Settings
from ulak.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Pdu,
    SubmitSm,
)
from ulak.smpp.session import (
    ConnectionClosed,
    Outstanding,
    ProtocolError,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
)

ROOT = Path(__file__).resolve().parents[1]


def sim_bind(sim: SimProcess, name: str, **fields: Any) -> BindConfig:
    """A bind to the test simulator's ``test:secret`` account (extra BindConfig *fields* override)."""
    values: dict[str, Any] = {"window": 50, **fields}
    return BindConfig(
        name=name,
        host="127.0.0.1",
        port=sim.port,
        system_id="test",
        password_env="UNUSED",
        password=SecretStr("secret"),
        **values,
    )


SIMULATOR = ROOT / "scripts" / "smsc_sim.py"


class FakeClock:
    """The tests' one clock that moves only when told: call it for the time, set or advance ``now``."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def settings_for(redis_url: str, operators: Iterable[OperatorConfig], **sections: Any) -> Settings:
    """The tests' one way to build Settings in process: Redis at *redis_url*, *operators*, Ray and
    the rest at their defaults unless *sections* says (``jobs=JobsConfig(...)``). (The API process
    reads YAML: ``tests.integration.stack.write_config``.)"""
    return Settings(redis=RedisConfig(url=redis_url), ray=RayConfig(), operators=tuple(operators), **sections)


def tcell_and_voda(
    bind: Callable[[str], BindConfig], *, tps: int, voda_binds: int = 1
) -> list[OperatorConfig]:
    """The two operators most tests route to: tcell (+90532…, binds t1 and t2) and voda (+90542…,
    binds v1[, v2]), each bind made by *bind* from its name."""
    return [
        OperatorConfig(name="tcell", prefixes=("90532",), tps=tps, binds=(bind("t1"), bind("t2"))),
        OperatorConfig(
            name="voda",
            prefixes=("90542",),
            tps=tps,
            binds=tuple(bind(f"v{i}") for i in range(1, voda_binds + 1)),
        ),
    ]


def ledger_hash(client: redis.Redis, kind: str, job: str, ledger: str) -> dict[bytes, bytes]:
    """Every field of *job*'s rows (``<row>``, ``<row>:o``, ...) or parts (``<row>:<part>``,
    ``<row>:<part>:m``, ...) in *ledger*, named by the whole row number: its buckets
    (``keys.job_bucket``) merged, what a test reads as one hash."""
    found: dict[bytes, bytes] = {}
    stem = keys.job_bucket(job, ledger, "")
    for name in client.scan_iter(match=stem + "*", count=1000):
        bucket = int(name.decode()[len(stem) :])
        for field, value in client.hgetall(name).items():  # type: ignore[union-attr]
            digit, colon, rest = field.partition(b":")
            if (kind == "parts") == rest[:1].isdigit():
                found[b"%d%s%s" % (bucket * keys.ROWS_A_BUCKET + int(digit), colon, rest)] = value
    return found


def message_id_key(client: redis.Redis, ledger: str, smsc: str, message_id: str) -> tuple[str, bytes] | None:
    """The map's hash that keeps *message_id* of *smsc* in *ledger* (``keys.message_ids``: this
    period's or the one before), and its value; None if neither has it."""
    for key, _ in keys.message_ids_near(ledger, smsc, message_id, time.time(), MESSAGE_TTL):
        value = client.hget(key, message_id)
        if value is not None:
            return key, value  # type: ignore[return-value]
    return None


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll *predicate* until it returns something truthy; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def crash_redis(server: RedisServer, *, keep_bytes: int, down: float = 0.0) -> int:
    """Kill Redis (SIGKILL) and cut its append-only file back to *keep_bytes*, as a machine crash
    with ``appendfsync everysec`` leaves it: the writes after are lost. Not cut if the file was
    rewritten since (smaller now: a prefix of the new file is no earlier state). Starts it again on
    its port, *down* seconds later; returns the bytes cut off."""
    server.kill()
    time.sleep(down)
    size = server.aof.stat().st_size if server.aof.exists() else 0
    cut = size - keep_bytes if 0 <= keep_bytes <= size else 0
    if cut:
        with server.aof.open("r+b") as f:
            f.truncate(keep_bytes)
    server.start()
    return cut


async def async_wait_for(predicate: Callable[[], Any], *, timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


class SimProcess:
    """The bundled SMSC simulator, started as a real process on a free port."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.workdir = workdir
        self.port_file = workdir / "sim.port"
        self.record = workdir / "record.jsonl"
        self.stats_file = workdir / "stats.json"
        cmd = [
            sys.executable,
            str(SIMULATOR),
            "--port",
            "0",
            "--port-file",
            str(self.port_file),
            "--control-port",
            "0",
            "--record",
            str(self.record),
            "--stats-file",
            str(self.stats_file),
            *args,
        ]
        self.log = (workdir / "sim.log").open("w")
        self.process = subprocess.Popen(
            cmd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        ports = wait_for(self._ports, timeout=30, what="the simulator to listen")
        self.port, self.control_port = ports

    def _ports(self) -> tuple[int, int] | None:
        if self.process.poll() is not None:
            raise AssertionError(f"simulator exited: {(self.workdir / 'sim.log').read_text()}")
        if not self.port_file.exists():
            return None
        lines = self.port_file.read_text().split()
        return int(lines[0]), int(lines[1])

    def control(self, **command: Any) -> dict[str, Any]:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as sock:
            sock.sendall(json.dumps(command).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply: dict[str, Any] = json.loads(data)
        if not reply.get("ok"):
            raise AssertionError(f"control command {command} failed: {reply}")
        return reply

    def stats(self) -> dict[str, Any]:
        return self.control(op="stats")["stats"]  # type: ignore[no-any-return]

    def records(self) -> list[dict[str, Any]]:
        self.stats()  # flushes the record file
        if not self.record.exists():
            return []
        # A killed simulator may leave a last line half written: never answered, so not on record.
        return [
            json.loads(line)
            for line in self.record.read_text(encoding="utf-8").splitlines(keepends=True)
            if line.endswith("\n")
        ]

    def stop(self) -> dict[str, Any]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=30)
        self.log.close()
        return json.loads(self.stats_file.read_text()) if self.stats_file.exists() else {}

    def kill(self) -> None:
        """SIGKILL: no goodbye on its connections, nothing written out (see ``--record-sync``)."""
        self.process.kill()
        self.process.wait(timeout=30)
        self.log.close()


class Esme:
    """A minimal ESME for tests: one connection, our sans-IO session, everything recorded."""

    def __init__(
        self, *, window: int = 100, answer_enquire_link: bool = True, answer_receipts: bool = True
    ) -> None:
        self.session = Session(Role.ESME, window=window)
        self.responses: list[ResponseReceived] = []
        self.requests: list[Pdu] = []  # deliver_sm and enquire_link from the SMSC, in arrival order
        self.events: list[Any] = []  # everything, in arrival order
        self.errors: list[ProtocolError] = []
        self.closed: ConnectionClosed | None = None
        self.answer_enquire_link = answer_enquire_link
        self.answer_receipts = answer_receipts
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None  # kept referenced: an unreferenced writer closes
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        self._task = asyncio.create_task(self._read_loop())

    async def _read_loop(self) -> None:
        assert self._reader is not None
        while True:
            data = await self._reader.read(65536)
            self.session.receive_data(data)
            for event in self.session.events():
                self.events.append(event)
                if isinstance(event, ResponseReceived):
                    self.responses.append(event)
                elif isinstance(event, RequestReceived):
                    self.requests.append(event.pdu)
                    if isinstance(event.pdu, DeliverSm) and self.answer_receipts:
                        self.write(self.session.send(DeliverSmResp(sequence=event.pdu.sequence)))
                    elif isinstance(event.pdu, EnquireLink) and self.answer_enquire_link:
                        self.write(self.session.send(EnquireLinkResp(sequence=event.pdu.sequence)))
                elif isinstance(event, ProtocolError):
                    self.errors.append(event)
                elif isinstance(event, ConnectionClosed):
                    self.closed = event
            if not data:
                return

    def write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def bind(
        self, system_id: str = "test", password: str = "secret", kind: str = "trx"
    ) -> ResponseReceived:
        cls = {"trx": BindTransceiver, "tx": BindTransmitter, "rx": BindReceiver}[kind]
        before = len(self.responses)
        self.write(self.session.send(cls(system_id=system_id, password=password)))
        await async_wait_for(lambda: len(self.responses) > before or self.closed, what="bind_resp")
        return self.responses[before]

    async def submit(self, pdus: list[SubmitSm], *, timeout: float = 30.0) -> list[ResponseReceived]:
        """Send all *pdus* (respecting the window), wait for every response, return them in send order."""
        before = len(self.responses)
        pending = list(enumerate(pdus))
        while pending and not self.closed:
            free = self.session.window_available
            if free:
                batch, pending = pending[:free], pending[free:]
                self.write(b"".join(self.session.send(p, context=i) for i, p in batch))
            await asyncio.sleep(0)
            if self.closed:
                break
            if not self.session.window_available:
                await async_wait_for(lambda: self.session.window_available or self.closed, timeout=timeout)
        await async_wait_for(
            lambda: len(self.responses) - before + len(self.in_flight_lost()) >= len(pdus) or self.closed,
            timeout=timeout,
            what="all submit_sm_resp",
        )
        return sorted(self.responses[before:], key=lambda r: r.context)

    def in_flight_lost(self) -> tuple[Outstanding, ...]:
        return self.closed.in_flight if self.closed else ()

    def receipts(self) -> list[DeliverSm]:
        return [p for p in self.requests if isinstance(p, DeliverSm) and p.esm_class & 0x04]

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()


class ApiProcess:
    """The control plane (``python -m api``), or another of our HTTP services (*module*: the
    redirect service's ``api.redirect``), as a real process serving HTTP on a free port."""

    def __init__(
        self,
        workdir: Path,
        config_dir: Path,
        env: dict[str, str],
        *,
        port: int | None = None,
        module: str = "api",
    ) -> None:
        import httpx

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{module}-{self.port}.log"
        self.log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--config-dir", str(config_dir), "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        )

        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"API exited: {self.log_path.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, interval=0.2, what="the API to answer /healthz")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def start_redis_cluster(
    data_dir: Path, *, masters: int = 3, password: str = "cluster-test"
) -> list[RedisServer]:
    """*masters* redis-server processes (the bundled binary, cluster mode) formed into one Redis
    Cluster, each owning an equal range of the 16,384 slots; returned once every node says the
    cluster is ok. The caller stops them. ``redisclient.cluster_url`` names it for clients."""
    servers: list[RedisServer] = []
    try:
        for i in range(masters):
            node = RedisServer(
                data_dir / f"node{i}",
                port=cluster_port(),
                password=password,
                cluster=True,  # AOF: a restart keeps it
            )
            servers.append(node.start())
        clients = [redis.Redis(port=s.port, password=password) for s in servers]
        for i, client in enumerate(clients):
            low, high = i * 16384 // masters, (i + 1) * 16384 // masters
            client.execute_command("CLUSTER ADDSLOTS", *range(low, high))
        for server in servers[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", server.port)

        def formed() -> bool:
            for client in clients:
                info = client.execute_command("CLUSTER INFO")  # parsed to a dict by redis-py
                if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != masters:
                    return False
            return True

        wait_for(formed, timeout=30, what=f"a {masters}-master Redis Cluster to form")
        for client in clients:
            client.close()
        return servers
    except BaseException:
        for server in servers:
            server.stop()
        raise
