"""One job through a three-node Ray cluster while everything it depends on fails once.

Run by ``test_multinode.py`` in a process of its own, which owns every part: a Redis with an
append-only file, the simulator (enforcing each bind's and the account's limit, answering
ESME_RTHROTTLED past either), a ``ray.cluster_utils.Cluster`` (head + two nodes advertising the
``egress`` resource), and the API as a process of its own joined to that cluster. One campaign goes
in over HTTP; once it sends, a fault every few seconds: the egress node holding bind b1 leaves the
cluster, the SMSC is killed (SIGKILL) and started again on its port, Redis is restarted, the
operator's throttle is killed (Ray restarts it), the API is restarted. Nobody helps the job. Prints
one JSON object: where each bind ran, the faults, the job's view, the report's statuses, and what
the SMSC recorded.

    python tests/integration/multinode_faults.py WORKDIR ROWS
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import ray  # noqa: E402
import redis  # noqa: E402
from ray.cluster_utils import Cluster as RayCluster  # noqa: E402

from api.keys import create_key  # noqa: E402
from tests.helpers import ApiProcess, SimProcess, wait_for  # noqa: E402
from ulak.redis_server import RedisServer  # noqa: E402

BIND_TPS = 300
ACCOUNT_TPS = 500  # below the two binds' sum: both limits hold at once
WINDOW = 10
NAMESPACE = "multinode-faults"
SIM_ARGS = ("--account", "test:secret", "--dlr-delay", "0.05:0.3", "--record-sync")
SIM_LIMITS = ("--tps", str(BIND_TPS), "--account-tps", str(ACCOUNT_TPS))
AFTER_ROWS = 2000
TEMPLATE = "Merhaba {ad}, hesabiniza {tutar} TL puan yuklendi."


def configs(workdir: Path, *, sim_port: int, redis_url: str) -> Path:
    config_dir = workdir / "configs"
    config_dir.mkdir()

    def bind(name: str) -> str:
        return (
            f"{{name: {name}, host: 127.0.0.1, port: {sim_port}, system_id: test, "
            f"password_env: ULAK_TEST_SIM_PASSWORD, window: {WINDOW}, tps: {BIND_TPS}, "
            "node_resource: egress}"
        )

    (config_dir / "operators.yaml").write_text(
        "operators:\n"
        f"  - {{name: op, prefixes: ['90532'], tps: {ACCOUNT_TPS},\n"
        f"      binds: [{bind('b1')}, {bind('b2')}]}}\n"
    )
    (config_dir / "ulak.yaml").write_text(
        f"redis: {{url: '{redis_url}'}}\n"
        f"jobs: {{data_dir: '{workdir / 'jobs'}', receipt_wait: 5, drain_timeout: 60}}\n"
        "ingest: {max_file_bytes: 20000000}\n"
    )
    return config_dir


def campaign(path: Path, rows: int, offset: int = 0) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["telefon", "ad", "tutar"])
        for i in range(offset, offset + rows):
            w.writerow([f"+90532{i:07d}", f"Ayse {i}", str(i)])


def post(h: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        created = h.post("/v1/jobs", files={"file": (path.name, f, "text/csv")}, data={"template": TEMPLATE})
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


def wait_job(h: httpx.Client, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        got = h.get(f"/v1/jobs/{job_id}")
        if got.status_code == 200:
            view = got.json()
            if view["state"] in ("done", "failed", "cancelled"):
                break
        time.sleep(1.0)
    return view


def where() -> dict[str, str]:
    binds = {}
    for name in ("b1", "b2"):
        actor = ray.get_actor(f"bind:op:{name}", namespace=NAMESPACE)
        binds[name] = ray.get(actor.describe.remote(), timeout=10)["node"]
    return binds


def main() -> int:
    workdir, rows = Path(sys.argv[1]), int(sys.argv[2])
    server = RedisServer(workdir / "redis", appendonly=True).start()
    sim = SimProcess(workdir, *SIM_ARGS, *SIM_LIMITS, "--seed", "1")
    health = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
    cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": health})
    nodes = [cluster.add_node(num_cpus=1, resources={"egress": 1}) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
    client = redis.Redis.from_url(server.url)
    token, _ = create_key(client, name="multinode")
    config_dir = configs(workdir, sim_port=sim.port, redis_url=server.url)
    env = {
        "ULAK_TEST_SIM_PASSWORD": "secret",
        "ULAK_RAY__ADDRESS": cluster.address,
        "ULAK_RAY__NAMESPACE": NAMESPACE,
    }
    api = ApiProcess(workdir, config_dir, env)
    out: dict[str, Any] = {"head": cluster.head_node.node_id, "egress": [n.node_id for n in nodes]}
    throttled = 0
    faults: list[str] = []

    def http() -> httpx.Client:
        return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    try:
        with http() as h:
            wait_for(lambda: h.get("/readyz").status_code == 200, timeout=60, what="the binds to bind")
        out["before"] = where()
        path = workdir / "campaign.csv"
        campaign(path, rows)
        with http() as h:
            job_id = post(h, path)
        wait_for(
            lambda: sim.stats().get("submit_sm_accepted", 0) > 2000, timeout=120, what="sending to start"
        )
        for action in ("remove_node", "kill_smsc", "restart_redis", "kill_throttle", "restart_api"):
            faults.append(action)
            if action == "remove_node":
                victim = next(n for n in nodes if n.node_id == out["before"]["b1"])
                out["victim"] = victim.node_id
                cluster.remove_node(victim)
            elif action == "kill_smsc":
                throttled += sim.stats().get("rejected", {}).get("ESME_RTHROTTLED", 0)
                port = sim.port
                sim.kill()
                sim.port_file.unlink()
                time.sleep(1.0)
                sim = SimProcess(
                    workdir,
                    *SIM_ARGS,
                    *SIM_LIMITS,
                    "--seed",
                    "2",
                    "--port",
                    str(port),
                    "--id-start",
                    "50000000",
                )
            elif action == "restart_redis":
                server.stop()
                time.sleep(1.0)
                server.start()
            elif action == "kill_throttle":
                ray.kill(ray.get_actor("throttle:op", namespace=NAMESPACE), no_restart=False)
            elif action == "restart_api":
                port = api.port
                api.stop()
                api = ApiProcess(workdir, config_dir, env, port=port)
            time.sleep(8.0)
        with http() as h:
            out["view"] = wait_job(h, job_id, 600)
        out["after"] = where()
        with http() as h:
            report = h.get(f"/v1/jobs/{job_id}/report").text
        statuses = Counter(r["status"] for r in csv.DictReader(io.StringIO(report)))
        acked = {r["msisdn"] for r in csv.DictReader(io.StringIO(report)) if r["status"] == "acked"}
        unknown = {r["msisdn"] for r in csv.DictReader(io.StringIO(report)) if r["status"] == "unknown"}
        records = sim.records()
        at_smsc = Counter(r["dst"] for r in records)
        throttled += sim.stats().get("rejected", {}).get("ESME_RTHROTTLED", 0)
        out.update(
            {
                "faults": faults,
                "statuses": dict(statuses),
                "report_rows": sum(statuses.values()),
                "records": len(records),
                "duplicates": sum(n - 1 for n in at_smsc.values() if n > 1),
                "acked_missing_at_smsc": len(acked - set(at_smsc)),
                "unknown_at_smsc": len(unknown & set(at_smsc)),
                "throttled": throttled,
            }
        )
        # No egress node left: the next job waits, saying why, and goes on once a node joins.
        cluster.remove_node(next(n for n in nodes if n.node_id != out["victim"]))
        path = workdir / "after.csv"
        campaign(path, AFTER_ROWS, offset=rows)
        with http() as h:
            after_id = post(h, path)

            def waiting() -> str:
                return str(h.get(f"/v1/jobs/{after_id}").json().get("waiting") or "")

            out["waiting"] = wait_for(
                lambda: "unplaced" in waiting() and waiting(), timeout=120, what="waiting"
            )
            out["operators"] = h.get("/v1/operators").json()
            out["sent_while_unplaced"] = h.get(f"/v1/jobs/{after_id}").json()["parts"]["sent"]
            cluster.add_node(num_cpus=1, resources={"egress": 1})
            out["after_view"] = wait_job(h, after_id, 300)
        after_numbers = {f"90532{i:07d}" for i in range(rows, rows + AFTER_ROWS)}
        after = Counter(r["dst"] for r in sim.records() if r["dst"] in after_numbers)
        out["after_at_smsc"] = {"numbers": len(after), "most": max(after.values(), default=0)}
    finally:
        api.stop()
        ray.shutdown()
        cluster.shutdown()
        sim.stop()
        client.close()
        server.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
