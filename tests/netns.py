"""Machines for multi-node tests: Linux network namespaces with their own addresses on bridges.

``ray.cluster_utils.Cluster`` puts every raylet on 127.0.0.1 in one process tree, and a node it
removes surfaces as a clean ``ActorDiedError`` within 0.07 s. A real machine that dies, or drops off
the network, looks different: RPC errors, ``ActorUnavailableError`` and timeouts first, death only
once Ray's health checks give up. Here each node is a namespace with an address of its own, started
with the commands the README gives (``ulak node head`` / ``ulak node worker --egress``), and it is lost
as a machine is: every process in it killed at once, or its link to the cluster network cut.

Two bridges in the root namespace, where the test itself and the SMSC simulator run:

* the cluster network (``10.213.N.0/24``): every node; the root namespace is ``.1``;
* the egress network (``10.214.N.0/24``): only the egress nodes, and the SMSC at ``.1``. The head has
  no route to it, so a bind that runs anywhere but an egress node cannot reach the SMSC, and the
  simulator's whitelist refuses any source address but the egress nodes'.

Cutting an egress node's cluster link (``partition``) leaves it connected to the SMSC but not to the
head, Redis or Ray: the partition a real network has. Everything is removed by ``close``; a machine
without the rights to make namespaces gets :func:`unavailable`'s reason, for a skip.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# How the README starts each kind of node; the namespace tests run exactly these (with sizing flags),
# and tests/unit/test_deploy.py holds ray_cluster.yaml, the image, compose and KubeRay to them.
INIT_COMMAND = ("ulak", "node", "init")
HEAD_COMMAND = ("ulak", "node", "head")
EGRESS_COMMAND = ("ulak", "node", "worker", "--egress")


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root; run ./scripts/test as root)"
    if shutil.which("ip") is None:
        return "the `ip` command is missing (apt-get install iproute2; ./scripts/test does it as root)"
    probe = f"ulakprobe{os.getpid() % 10000}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


def _free_subnet(first: int) -> int:
    """A third octet for 10.213.N.0/24 and 10.214.N.0/24 that overlaps no route of this machine (a
    machine whose own network is there, or a test run beside this one)."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False).stdout
    taken = []
    for line in routes.splitlines():
        with contextlib.suppress(ValueError, IndexError):
            taken.append(ipaddress.ip_network(line.split()[0], strict=False))  # not "default"
    for n in [*range(first, 250), *range(16, first)]:
        wanted = [ipaddress.ip_network(f"10.{b}.{n}.0/24") for b in (213, 214)]
        if not any(w.overlaps(t) for w in wanted for t in taken):
            return n
    raise RuntimeError("no free 10.213.N.0/24 and 10.214.N.0/24 for the test machines")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Node:
    """One machine: a namespace, its address on the cluster network (and the egress one)."""

    name: str
    netns: str
    address: str
    egress_address: str | None
    link: str  # the root side of its cluster veth: down = cut off from the head
    home: Path
    tmp: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, command: Sequence[str], *, env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        """*command* inside the node, with a home of its own (no ~/.ray shared with another node)."""
        out = (self.home / log).open("ab")
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(self.home),
                "XDG_STATE_HOME": str(self.home / "state"),
                # Ray's files of its own, as on a machine of its own: a shared /tmp/ray let the
                # head's address file make every later local `ray.init()` join this cluster. Short:
                # a Unix socket's path must fit in 107 bytes.
                "RAY_TMPDIR": str(self.tmp),
                "PYTHONUNBUFFERED": "1",
                **env,
            },
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        listed = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=False
        )
        return [int(p) for p in listed.stdout.split()]

    def kill(self) -> int:
        """Every process in the node, SIGKILL at once: what a machine that dies leaves. Returns how
        many there were."""
        killed = 0
        for _ in range(5):  # a process forking meanwhile is caught by the next pass
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            time.sleep(0.1)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.processes.clear()
        return killed

    def partition(self) -> None:
        """Cut the node off the cluster network (the head, Redis, Ray); the SMSC stays reachable."""
        _ip("link", "set", self.link, "down")

    def heal(self) -> None:
        _ip("link", "set", self.link, "up")


class Network:
    """Bridges and nodes; see the module docstring. Use as a context manager."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.tag = f"{os.getpid() % 4096:03x}"
        subnet = _free_subnet(16 + os.getpid() % 200)
        self.cluster_prefix = f"10.213.{subnet}"
        self.egress_prefix = f"10.214.{subnet}"
        self.cluster_bridge = f"ulc{self.tag}"
        self.egress_bridge = f"ule{self.tag}"
        self.nodes: list[Node] = []
        self._made: list[tuple[str, ...]] = []  # what close removes, newest first
        self._tmp: list[Path] = []

    @property
    def smsc_address(self) -> str:
        """Where the SMSC listens: the egress network's root side."""
        return f"{self.egress_prefix}.1"

    def __enter__(self) -> Network:
        networks = ((self.cluster_bridge, self.cluster_prefix), (self.egress_bridge, self.egress_prefix))
        for bridge, prefix in networks:
            _ip("link", "add", bridge, "type", "bridge")
            self._made.append(("link", "del", bridge))
            _ip("addr", "add", f"{prefix}.1/24", "dev", bridge)
            _ip("link", "set", bridge, "up")
        return self

    def add(self, name: str, *, egress: bool) -> Node:
        index = len(self.nodes) + 10
        netns = f"ulak{self.tag}{name}"
        _ip("netns", "add", netns)
        self._made.append(("netns", "del", netns))
        _ip("-n", netns, "link", "set", "lo", "up")
        address = f"{self.cluster_prefix}.{index}"
        link = self._veth(netns, f"c{self.tag}{index}", "eth0", self.cluster_bridge, address)
        egress_address = None
        if egress:
            egress_address = f"{self.egress_prefix}.{index}"
            self._veth(netns, f"e{self.tag}{index}", "eth1", self.egress_bridge, egress_address)
        home = self.workdir / name
        home.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"uk{name}"))
        self._tmp.append(tmp)
        node = Node(name, netns, address, egress_address, link, home, tmp)
        self.nodes.append(node)
        return node

    def _veth(self, netns: str, outside: str, inside: str, bridge: str, address: str) -> str:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", netns)
        self._made.append(("link", "del", outside))
        _ip("link", "set", outside, "master", bridge)
        _ip("link", "set", outside, "up")
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", netns, "link", "set", inside, "up")
        return outside

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        for undo in reversed(self._made):
            subprocess.run(["ip", *undo], capture_output=True, check=False)
        self._made.clear()
        for tmp in self._tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        self._tmp.clear()

    def __exit__(self, *exc: object) -> None:
        self.close()
