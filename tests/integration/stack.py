"""The integration tests' harness for the running stack: Redis, the API process joined to this
session's Ray, its binds to a simulator; the campaign files they upload and the checks every test of
a finished job makes. Test modules import from here, never from each other."""

from __future__ import annotations

import contextlib
import csv
import http.server
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ray
import redis

from api.cli.stack import stop_actors
from api.keys import create_key
from tests.helpers import ApiProcess, SimProcess, wait_for
from ulak import redisclient
from ulak.redis_server import RedisServer

TEMPLATE = "Merhaba {ad}, hesabınıza {tutar} TL puan yüklendi. Şubat kampanyası için teşekkürler!"


LONG = "Uzun mesaj: " + "çok güzel bir kampanya, kaçırmayın! " * 6


@dataclass
class Stack:
    workdir: Path
    config_dir: Path
    env: dict[str, str]
    sim: SimProcess
    redis: redis.Redis
    api: ApiProcess
    token: str
    read_token: str
    namespace: str
    redis_server: RedisServer | None  # None: a Redis the test started itself (a cluster)

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.api.url, headers={"Authorization": f"Bearer {token or self.token}"}, timeout=30
        )

    def restart_api(self, *, kill: bool = False) -> None:
        self.api.stop(9 if kill else 15)
        self.api = ApiProcess(self.workdir, self.config_dir, self.env)

    def records(self, prefix: str) -> list[dict[str, Any]]:
        return [r for r in self.sim.records() if r["dst"].startswith(prefix)]


def write_config(
    workdir: Path,
    sim: SimProcess,
    redis_url: str,
    *,
    tps: int,
    jobs: dict[str, Any] | None = None,
    accounts: dict[str, str] | None = None,
    links: dict[str, Any] | None = None,
    replies: dict[str, Any] | None = None,
    frequency_caps: dict[str, Any] | None = None,
    tcell_prefixes: tuple[str, ...] = ("90532", "90533"),
) -> Path:
    config_dir = workdir / "configs"
    config_dir.mkdir()
    (workdir / "uploads").mkdir()

    def bind(name: str) -> str:
        system_id = (accounts or {}).get({"t": "tcell", "v": "voda"}[name[0]], "test")
        return (
            f"{{name: {name}, host: 127.0.0.1, port: {sim.port}, system_id: {system_id}, "
            f"password_env: ULAK_TEST_SIM_PASSWORD, window: 20}}"
        )

    (config_dir / "operators.yaml").write_text(
        "operators:\n"
        f"  - {{name: tcell, prefixes: {list(tcell_prefixes)}, tps: {tps}, price_per_part: 0.20,\n"
        f"      binds: [{bind('t1')}, {bind('t2')}]}}\n"
        f"  - {{name: voda, prefixes: ['90542', '90543'], tps: {tps}, concatenation: sar,\n"
        "      price_per_part: 0.15,\n"
        f"      binds: [{bind('v1')}]}}\n"
    )
    (config_dir / "ulak.yaml").write_text(
        f"redis: {{url: '{redis_url}'}}\n"
        "jobs: "
        + json.dumps(
            {"data_dir": str(workdir / "jobs"), "receipt_wait": 5, "drain_timeout": 60} | (jobs or {})
        )
        + "\n"
        f"ingest: {{max_file_bytes: 2000000}}\n"
        f"api: {{uri_root: '{workdir / 'uploads'}'}}\n"
        "webhooks: {allow_private_targets: true}\n"  # the test's receiver listens on 127.0.0.1
        + (f"links: {json.dumps(links)}\n" if links else "")
        + (f"replies: {json.dumps(replies)}\n" if replies else "")
        + (f"frequency_caps: {json.dumps(frequency_caps)}\n" if frequency_caps else "")
    )
    return config_dir


@contextlib.contextmanager
def running_stack(
    workdir: Path,
    sim: SimProcess,
    *,
    tps: int,
    name: str,
    appendonly: bool = False,
    jobs: dict[str, Any] | None = None,
    redis_url: str | None = None,
    accounts: dict[str, str] | None = None,
    links: dict[str, Any] | None = None,
    replies: dict[str, Any] | None = None,
    frequency_caps: dict[str, Any] | None = None,
    tcell_prefixes: tuple[str, ...] = ("90532", "90533"),
) -> Iterator[Stack]:
    """Redis (its own server, or the one at *redis_url*: a cluster's), the API process (joining this
    session's Ray in a namespace of its own) and its binds to *sim*, ready once /readyz says the
    binds are bound; all stopped after (``stack.sim`` too: a test may have replaced it)."""
    server = RedisServer(workdir / "redis", appendonly=appendonly).start() if redis_url is None else None
    url = server.url if server is not None else str(redis_url)
    client = redisclient.client(url)
    namespace = f"ulak-{name}-{uuid.uuid4().hex[:6]}"
    env = {
        "ULAK_TEST_SIM_PASSWORD": "secret",
        "ULAK_RAY__ADDRESS": ray.get_runtime_context().gcs_address,
        "ULAK_RAY__NAMESPACE": namespace,
    }
    config_dir = write_config(
        workdir,
        sim,
        url,
        tps=tps,
        jobs=jobs,
        accounts=accounts,
        links=links,
        replies=replies,
        frequency_caps=frequency_caps,
        tcell_prefixes=tcell_prefixes,
    )
    token, _ = create_key(client, name="tests")
    read_token, _ = create_key(client, name="dashboard", scope="read")
    api = ApiProcess(workdir, config_dir, env)
    stack = Stack(workdir, config_dir, env, sim, client, api, token, read_token, namespace, server)
    try:
        with stack.client() as http:
            wait_for(lambda: http.get("/readyz").status_code == 200, timeout=30, what="the binds to bind")
        yield stack
    finally:
        stack.api.stop()
        stop_actors(namespace)
        client.close()
        if server is not None:
            server.stop()
        stack.sim.stop()


def campaign_csv(
    path: Path, prefix: str, rows: int, *, bad_every: int = 0, long_every: int = 0
) -> dict[str, int]:
    """A CSV of *rows* rows for numbers ``+<prefix>…``; returns what the upload should turn into."""
    expected = Counter[str]()
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["telefon", "ad", "tutar"])
        for i in range(rows):
            if bad_every and i % bad_every == bad_every - 1:
                w.writerow(["12345", f"Ayşe {i}", str(i)])
                expected["rejected"] += 1
                continue
            tutar = LONG if long_every and i % long_every == 0 else str(i)
            w.writerow([f"+{prefix}{i:0{12 - len(prefix)}d}", f"Çağrı {i}", tutar])
            expected["accepted"] += 1
    expected["rows"] = rows
    return dict(expected)


def numbers_csv(path: Path, numbers: list[str]) -> Path:
    """A CSV (telefon, ad) for *numbers* (E.164 digits)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["telefon", "ad"])
        for i, n in enumerate(numbers):
            w.writerow([f"+{n}", f"Ada {i}"])
    return path


def campaign_rows(path: Path, numbers: list[str], campaign: str) -> Path:
    """A CSV (telefon, ad, kampanya) for *numbers*, each row naming *campaign*, so a test can tell
    each job's messages apart in what the simulator recorded."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["telefon", "ad", "kampanya"])
        for i, n in enumerate(numbers):
            w.writerow([f"+{n}", f"Ada {i}", campaign])
    return path


def post_job(
    http: httpx.Client, path: Path, *, headers: dict[str, str] | None = None, **options: Any
) -> httpx.Response:
    data = {k: (json.dumps(v) if isinstance(v, bool) else str(v)) for k, v in options.items()}
    with path.open("rb") as f:
        return http.post("/v1/jobs", files={"file": (path.name, f, "text/csv")}, data=data, headers=headers)


def wait_state(http: httpx.Client, job_id: str, *states: str, timeout: float = 120) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        response = http.get(f"/v1/jobs/{job_id}")
        if response.status_code == 503:  # Redis (or a shard of it) away for now: ask again
            return None
        view: dict[str, Any] = response.json()
        return view if view["state"] in states else None

    result: dict[str, Any] = wait_for(
        check, timeout=timeout, interval=0.1, what=f"job {job_id} to be {states}"
    )
    return result


def assert_adds_up(view: dict[str, Any]) -> None:
    c, r = view["counts"], view["receipts"]
    assert c["rows"] == c["accepted"] + c["rejected"] + c["held_out"]
    stopped = c["opted_out"] + c["no_consent"] + c["frequency_capped"] + c["expired"]  # ended unsent
    assert c["accepted"] == c["pending"] + c["cancelled"] + stopped + c["submitted"]
    assert c["submitted"] == c["in_flight"] + c["acked"] + c["failed"] + c["unknown"]
    outcomes = ("delivered", "undelivered", "expired", "rejected", "deleted", "receipt_unknown")
    assert c["acked"] == r["awaiting"] + sum(r[o] for o in outcomes)


def assert_done(view: dict[str, Any], expected: dict[str, int]) -> None:
    """*view* is done, its figures add up, and its rows are what the upload should have made."""
    assert view["state"] == "done", view
    assert_adds_up(view)
    c = view["counts"]
    assert (c["rows"], c["accepted"], c["rejected"]) == (
        expected["rows"],
        expected["accepted"],
        expected["rejected"],
    )


def no_duplicates(records: list[dict[str, Any]]) -> None:
    parts = Counter((r["dst"], tuple(r["concat"] or (0, 0, 1))[2]) for r in records)
    assert parts and max(parts.values()) == 1, [p for p, n in parts.items() if n > 1][:5]


def assert_report_agrees(rows: list[dict[str, str]], records: list[dict[str, Any]], context: Any) -> None:
    """The report and the SMSC's record agree: every acked row's message ids are the ones the SMSC
    gave its parts; a row the SMSC has and we do not call acked is one we call unknown."""
    at_smsc: dict[str, list[str]] = {}
    for r in records:
        at_smsc.setdefault(r["dst"], []).append(r["message_id"])
    for row in rows:
        got = at_smsc.get(row["msisdn"], [])
        if row["status"] == "acked":
            assert sorted(row["message_ids"].split()) == sorted(got), (row, context)
        elif got:
            assert row["status"] == "unknown", (row, got, context)


class WebhookReceiver:
    """Answers 503 to its first *failures* calls, then 204; keeps the deliveries it accepted."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.accepted: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.calls += 1
                if owner.calls <= owner.failures:
                    self.send_response(503)
                else:
                    owner.accepted.append(body["delivery"])
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


SIM_ARGS = ("--account", "test:secret", "--dlr-delay", "0.05:0.3", "--record-sync")


def mixed_campaign(path: Path, prefixes: tuple[str, ...], rows: int) -> None:
    """*rows* rows dealt over *prefixes*; one in seven is a long (multipart) message."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["telefon", "ad", "tutar"])
        for i in range(rows):
            prefix = prefixes[i % len(prefixes)]
            tutar = LONG if i % 7 == 0 else str(i)
            w.writerow([f"+{prefix}{i:0{12 - len(prefix)}d}", f"Çağrı {i}", tutar])


def restart_smsc(stack: Stack, restarts: int, *, kill: bool, start: bool | None = None) -> SimProcess:
    """Stop the SMSC (its connections drop), or *kill* it (SIGKILL: its receipts not yet sent are
    gone with it, as a crashed SMSC's unsaved state), and start it again on the same port, ids not
    reused. *start*: False only stops it, True only starts it again (the port kept in between)."""
    port = stack.sim.port
    if start is not True:
        if kill:
            stack.sim.kill()
        else:
            stack.sim.stop()
        stack.sim.port_file.unlink()
        if start is False:
            return stack.sim
    stack.sim = SimProcess(
        stack.workdir, *SIM_ARGS, "--seed", str(100 + restarts), "--port", str(port),
        "--id-start", str(10_000_000 * (restarts + 1)),
    )  # fmt: skip
    return stack.sim
