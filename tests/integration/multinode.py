"""A campaign through a three-node Ray cluster (``ray.cluster_utils.Cluster``): head, egress A, egress B.

Run by ``test_multinode.py`` in a process of its own (the test session's Ray is a single local node,
and a process joins one Ray cluster at a time). Binds ask for the ``egress`` resource that only the
two egress nodes advertise, as a bind names the node that owns the IP address its operator
whitelisted. Half-way, the egress node that holds bind b1 leaves the cluster: its binds are settled
and made again by the bind pool, on the other egress node. Prints one JSON object: where each bind
ran, and the counters.

    python tests/integration/multinode.py REDIS_URL SIM_PORT ROWS
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import ray  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from ray.cluster_utils import Cluster as RayCluster  # noqa: E402

from actors.local import Cluster  # noqa: E402
from scripts.bench.campaign import run_campaign  # noqa: E402
from tests.helpers import settings_for  # noqa: E402
from ulak.settings import BindConfig, OperatorConfig, Settings  # noqa: E402

BIND_TPS = 100
ACCOUNT_TPS = 150  # the account caps the two binds together below the sum of theirs: both hold


def settings(redis_url: str, port: int) -> Settings:
    binds = tuple(
        BindConfig(
            name=f"b{i}",
            host="127.0.0.1",
            port=port,
            system_id="test",
            password_env="UNUSED",
            password=SecretStr("secret"),
            window=10,
            tps=BIND_TPS,
            node_resource="egress",
        )
        for i in (1, 2)
    )
    op = OperatorConfig(name="op", prefixes=("90",), tps=ACCOUNT_TPS, binds=binds)
    return settings_for(redis_url, [op])


def where(stack: Cluster) -> dict[str, str]:
    return {d["bind"]: d.get("node", "?") for d in stack.describe()["op"]}


def campaign(rows: int, offset: int) -> pa.Table:
    return pa.table(
        {
            "phone": [f"90532{offset + i:07d}" for i in range(rows)],
            "text": [f"Kampanya {offset + i}: tüm ürünlerde indirim" for i in range(rows)],
        }
    )


def main() -> int:
    redis_url, port, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # A node that vanishes is noticed within ~2 s instead of Ray's default ~30 s.
    health = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
    cluster = RayCluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": health})
    egress_a = cluster.add_node(num_cpus=1, resources={"egress": 1})
    egress_b = cluster.add_node(num_cpus=1, resources={"egress": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    out: dict[str, Any] = {
        "head": cluster.head_node.node_id,
        "egress": {"a": egress_a.node_id, "b": egress_b.node_id},
    }
    try:
        with Cluster(settings(redis_url, port), namespace="multinode") as stack:
            assert stack.pool is not None
            out["before"] = where(stack)
            out["first"] = run_campaign(stack, campaign(rows, 0), job_id="first", receipt_wait=30)
            # The egress node that holds b1 leaves; its binds must come back on the other one.
            victim = egress_a if out["before"]["b1"] == egress_a.node_id else egress_b
            out["victim"] = victim.node_id
            on_victim = [b for b, node in out["before"].items() if node == victim.node_id]
            cluster.remove_node(victim)
            deadline = time.monotonic() + 120
            replaced: list[str] = []
            while not replaced and time.monotonic() < deadline:
                replaced = [ref.bind for ref in stack.pool.replace_dead()]
                time.sleep(0.5)
            out["lost"], out["replaced"] = sorted(on_victim), sorted(replaced)
            out["after"] = where(stack)
            out["second"] = run_campaign(stack, campaign(rows, rows), job_id="second", receipt_wait=30)
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
