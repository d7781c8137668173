"""``ulak node``: the one way a machine joins a Ulak cluster.

``ray_cluster.yaml``, the container image, the compose file, the KubeRay manifest and the multi-node
tests all start nodes with these commands, so the path that is tested is the path that is documented:

    ulak node init --head-ip 10.0.0.10 -o ulak.env   # once: the cluster's environment file (secrets)
    ulak node head                                   # the head: Redis, the Ray head, the control plane
    ulak node worker --egress                        # a machine whose address the operators whitelisted
    ulak node worker                                 # any other worker (ingest, job actors)

Every node reads the same environment file (``--env-file``, else ``$ULAK_ENV_FILE``, else
``/etc/ulak/ulak.env``); a variable already set in the process's environment wins over the file, so a
container platform can override any of them. The file holds:

* ``ULAK_RAY__ADDRESS``: the head's address and Ray port, which every worker joins;
* ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN``: Ray 2.60 authenticates its RPCs with a token, and a
  node without the cluster's token is refused (``InvalidAuthToken``); the file carries it, so no node
  depends on a ``~/.ray/auth_token`` some earlier ``ray.init`` happened to write;
* ``ULAK_REDIS__URL``: the one Redis every node writes to (the head starts it when the URL names the
  head's address; otherwise it is yours);
* ``ULAK_JOBS__DATA_DIR``: where job files live, a path every node reaches.

Each node advertises an address the others can reach: ``--ip``, else ``$ULAK_NODE_IP``, else (a worker)
the source address of its route to the head, else (the head) the head address in the file. Ray's own
guess is the address of the default route, which on a machine whose default route is not on the
cluster network is wrong (127.0.0.1 or a public address), and the cluster then never forms.

The head also tells Ray to declare a node dead after ~5 s of failed health checks instead of its
default ~30 s: a lost egress node's binds are made again on another one that much sooner.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from ulak.runtime import ray_worker_pool_env

if TYPE_CHECKING:
    from ulak.redis_server import RedisServer

DEFAULT_ENV_FILE = Path("/etc/ulak/ulak.env")
RAY_PORT = 6380
REDIS_PORT = 6379
EGRESS_RESOURCE = "egress"

# Ray declares a node dead after health_check_failure_threshold checks that failed (each given
# health_check_timeout_ms), health_check_period_ms apart: ~5 s here, ~30 s by Ray's defaults.
HEALTH_CHECKS = {
    "RAY_health_check_initial_delay_ms": "2000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "5",
}


class NodeError(Exception):
    """A node cannot start as asked; the message says what to change."""


# ------------------------------------------------------------------------------------ environment


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines, optional quotes around the value)."""
    return read_env_file_text(path.read_text(), where=str(path))


def read_env_file_text(text: str, *, where: str = "environment file") -> dict[str, str]:
    values: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not key:
            raise NodeError(f"{where}:{n}: expected KEY=VALUE, got {line[:40]!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def node_environment(env_file: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a node runs with: the file's variables under the process's own."""
    named = environ.get("ULAK_ENV_FILE")
    path = env_file or (Path(named) if named else DEFAULT_ENV_FILE)
    if not path.exists():
        if env_file is not None or environ.get("ULAK_ENV_FILE"):
            raise NodeError(f"{path}: no such environment file (make one with `ulak node init`)")
        file_values: dict[str, str] = {}
    else:
        file_values = read_env_file(path)
    env = {**file_values, **environ}
    if not env.get("ULAK_RAY__ADDRESS"):
        raise NodeError(
            f"ULAK_RAY__ADDRESS is not set (looked in {path} and the environment): make the cluster's "
            "environment file with `ulak node init --head-ip HEAD_ADDRESS -o ulak.env` and copy it to "
            "every node as /etc/ulak/ulak.env (or pass --env-file)"
        )
    if env.get("RAY_AUTH_MODE", "token") == "token" and not env.get("RAY_AUTH_TOKEN"):
        raise NodeError(
            "RAY_AUTH_TOKEN is not set: Ray refuses nodes without the cluster's token. `ulak node init` "
            "writes one into the environment file; set RAY_AUTH_MODE=disabled to run without (not advised)"
        )
    env.setdefault("RAY_AUTH_MODE", "token")
    return env


def init_env(*, head_ip: str, redis_host: str | None = None, data_dir: str = "/var/lib/ulak/jobs") -> str:
    """A new cluster's environment file: addresses, a Ray token and a Redis password (secrets: 0600).
    *head_ip* may be a name the nodes resolve (a compose service, a Kubernetes Service)."""
    password = secrets.token_urlsafe(24)
    redis_host = redis_host or head_ip
    return (
        "# Ulak cluster environment: the same file on every node (/etc/ulak/ulak.env, mode 0600).\n"
        "# Made by `ulak node init`; it holds secrets.\n"
        f"ULAK_RAY__ADDRESS={head_ip}:{RAY_PORT}\n"
        "RAY_AUTH_MODE=token\n"
        f"RAY_AUTH_TOKEN={secrets.token_hex(32)}\n"
        f"ULAK_REDIS__URL=redis://:{quote(password, safe='')}@{redis_host}:{REDIS_PORT}/0\n"
        "# The same password for a Redis you run yourself (the compose file's and the Kubernetes one).\n"
        f"REDIS_PASSWORD={password}\n"
        "# A folder every node sees at this path (NFS or similar), or s3://bucket/prefix.\n"
        f"ULAK_JOBS__DATA_DIR={data_dir}\n"
    )


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise NodeError(f"ULAK_RAY__ADDRESS={address!r}: expected HOST:PORT, e.g. 10.0.0.10:{RAY_PORT}")
    return host, int(port)


def route_source(host: str, port: int) -> str:
    """The address this machine sends from to reach *host* (no packet is sent: a UDP 'connect')."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, port))
        except OSError as exc:
            raise NodeError(f"no route to the head at {host}:{port} ({exc}); pass --ip") from None
        return str(sock.getsockname()[0])


def health(env_file: Path | None, *, api: str | None, timeout: float = 3.0) -> str | None:
    """What is wrong with this node's view of the cluster (None: healthy): the head's Ray port
    answers, and with *api*, the control plane's ``/healthz``. The container image's HEALTHCHECK."""
    import urllib.request  # noqa: PLC0415 - only here

    try:
        env = node_environment(env_file, os.environ)
        host, port = split_address(env["ULAK_RAY__ADDRESS"])
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except (NodeError, OSError) as exc:
        return f"the Ray head does not answer: {exc}"
    if api:
        try:
            with urllib.request.urlopen(f"{api.rstrip('/')}/healthz", timeout=timeout) as answer:
                if answer.status != 200:
                    return f"{api}/healthz answered {answer.status}"
        except OSError as exc:
            return f"{api}/healthz: {exc}"
    return None


def node_ip(explicit: str | None, env: Mapping[str, str]) -> str:
    """The address this node advertises: *explicit*, ``$ULAK_NODE_IP``, else the source address of
    its route to the head (the head's own address on the head; a container's own address where the
    head is a service name)."""
    if explicit:
        return explicit
    if env.get("ULAK_NODE_IP"):
        return env["ULAK_NODE_IP"]
    host, port = split_address(env["ULAK_RAY__ADDRESS"])
    return route_source(host, port)


def ray_binary() -> str:
    """The ``ray`` beside this Python (the one of the Ulak installed here)."""
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else "ray"


def resources_arg(*, egress: bool, resources: str | None) -> list[str]:
    import json  # noqa: PLC0415 - only here

    wanted: dict[str, float] = json.loads(resources) if resources else {}
    if egress:
        wanted.setdefault(EGRESS_RESOURCE, 1)
    return [f"--resources={json.dumps(wanted)}"] if wanted else []


# ------------------------------------------------------------------------------------- commands


def sizes_args(*, num_cpus: int | None, object_store_memory: int | None) -> list[str]:
    args = []
    if num_cpus is not None:
        args.append(f"--num-cpus={num_cpus}")
    if object_store_memory is not None:
        args.append(f"--object-store-memory={object_store_memory}")
    return args


def worker_command(
    env: Mapping[str, str],
    *,
    ip: str,
    egress: bool,
    resources: str | None = None,
    num_cpus: int | None = None,
    object_store_memory: int | None = None,
) -> list[str]:
    """``ray start`` joining the head, in the foreground (``--block``: a supervisor sees it exit)."""
    args = [ray_binary(), "start", f"--address={env['ULAK_RAY__ADDRESS']}", f"--node-ip-address={ip}"]
    args += resources_arg(egress=egress, resources=resources)
    args += sizes_args(num_cpus=num_cpus, object_store_memory=object_store_memory)
    return [*args, "--disable-usage-stats", "--block"]


def head_command(
    env: Mapping[str, str],
    *,
    ip: str,
    resources: str | None = None,
    num_cpus: int | None = None,
    object_store_memory: int | None = None,
) -> list[str]:
    """``ray start --head`` on the port the environment file names, in the foreground."""
    _, port = split_address(env["ULAK_RAY__ADDRESS"])
    args = [ray_binary(), "start", "--head", f"--node-ip-address={ip}", f"--port={port}"]
    args += ["--include-dashboard=false", "--disable-usage-stats"]
    args += resources_arg(egress=False, resources=resources)
    args += sizes_args(num_cpus=num_cpus, object_store_memory=object_store_memory)
    return [*args, "--block"]


def run_worker(
    env_file: Path | None,
    *,
    ip: str | None,
    egress: bool,
    num_cpus: int | None,
    resources: str | None,
    object_store_memory: int | None = None,
) -> int:
    env = {**node_environment(env_file, os.environ), **ray_worker_pool_env()}
    address = node_ip(ip, env)
    command = worker_command(
        env,
        ip=address,
        egress=egress,
        num_cpus=num_cpus,
        resources=resources,
        object_store_memory=object_store_memory,
    )
    print(f"ulak node worker: joining {env['ULAK_RAY__ADDRESS']} as {address}", flush=True)
    return _keep_running(command, env, what="ulak node worker")


RESTART_DELAY = 5.0  # seconds between a Ray node's exit and its next start


def _keep_running(command: list[str], env: Mapping[str, str], *, what: str) -> int:
    """Run *command* (``ray start --block``) until SIGTERM or SIGINT, starting it again when it exits:
    a node that could not register with a busy head in time, or that the head declared dead (a
    network cut that healed), joins again by itself instead of waiting for someone to notice."""
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        began = time.monotonic()
        child = subprocess.Popen(command, env=dict(env))
        code = child.wait()
        if stopping:
            return 0
        print(
            f"{what}: Ray exited with {code} after {time.monotonic() - began:.0f} s; "
            f"starting it again in {RESTART_DELAY:g} s",
            flush=True,
        )
        time.sleep(RESTART_DELAY)
        if stopping:
            return 0


def run_head(
    env_file: Path | None,
    *,
    ip: str | None,
    num_cpus: int | None,
    resources: str | None,
    config_dir: Path | None,
    redis: bool,
    api: bool,
    object_store_memory: int | None = None,
) -> int:
    """Redis (when the URL names this node), the Ray head and the control plane, until a signal."""
    env = {**node_environment(env_file, os.environ), **HEALTH_CHECKS, **ray_worker_pool_env()}
    address = node_ip(ip, env)
    _, port = split_address(env["ULAK_RAY__ADDRESS"])
    env["ULAK_RAY__ADDRESS"] = f"{address}:{port}"
    env.setdefault("ULAK_API__HOST", address)
    env.setdefault("ULAK_LINKS__HOST", address)
    # Ray reads RAY_AUTH_MODE and RAY_AUTH_TOKEN when it is imported: the control plane's client
    # and the API process it starts must see the file's, so they go in before Ray is imported.
    os.environ.update(env)
    from api.cli.stack import LocalStack, end_process, stack_file  # noqa: PLC0415 - imports Ray
    from ulak.settings import load_settings  # noqa: PLC0415

    server: RedisServer | None = None
    ray_head: subprocess.Popen[bytes] | None = None
    stack: LocalStack | None = None

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server = _head_redis(env, address) if redis else None
        command = head_command(
            env, ip=address, num_cpus=num_cpus, resources=resources, object_store_memory=object_store_memory
        )
        ray_head = subprocess.Popen(command, env=env)
        _wait_port(address, port, ray_head)
        print(f"ulak node head: Ray head on {address}:{port}", flush=True)
        if not api:
            ray_head.wait()
            return ray_head.returncode or 0
        settings = load_settings(config_dir, environ=env)
        stack = LocalStack(settings, save_info=True, ready_when_bound=False)
        stack.start()
        print(f"ulak node head: API on {stack.api_url} (web manager at /ui/)", flush=True)
        if stack.token:
            print(f"ulak node head: API key (kept in {stack_file()}): {stack.token}", flush=True)
        stack.supervise()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if stack is not None:
            stack.stop()
        if ray_head is not None:
            end_process(ray_head, timeout=30)
        if server is not None:
            server.stop()
    return 0


def _head_redis(env: dict[str, str], address: str) -> RedisServer | None:
    """Redis on this node, when the cluster's Redis URL names this node's address (else None)."""
    from ulak.redis_server import RedisServer, default_state_dir  # noqa: PLC0415

    url = urlsplit(env.get("ULAK_REDIS__URL", ""))
    if url.hostname != address:
        return None
    state = Path(env.get("ULAK_STATE_DIR") or default_state_dir()) / "cluster-redis"
    password = unquote(url.password) if url.password else None
    server = RedisServer(state, port=url.port or REDIS_PORT, password=password, host=address).start()
    print(f"ulak node head: Redis on {address}:{server.port}", flush=True)
    return server


def _wait_port(host: str, port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise NodeError(f"`ray start --head` exited with {process.returncode}; see its output above")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise NodeError(f"the Ray head did not listen on {host}:{port} within {timeout:g} s")
        time.sleep(0.2)
