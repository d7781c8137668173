"""``ulak up``: the whole stack on one machine, supervised by one process.

:class:`LocalStack` starts Redis (embedded unless ``redis.url`` is set), Ray (local unless
``ray.address`` is set), optionally the bundled SMSC simulator for every configured operator, and the
HTTP control plane as a child process (``python -m api``) that it restarts if it dies. The binds and
the jobs are detached Ray actors, so the control plane can restart without stopping a job; they stop
with the stack. The first start creates an API key and keeps it, with the API's URL, in a stack file
(``~/.local/state/ulak/stack.json``, mode 0600) that the other ``ulak`` commands read.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ray
import redis
import yaml

from api.keys import create_key, list_keys, lookup
from ulak import redisclient
from ulak.redis_server import RedisServer, default_state_dir
from ulak.runtime import ray_init_args
from ulak.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SIMULATOR = ROOT / "scripts" / "smsc_sim.py"
SIM_PASSWORD = "sim"  # the simulator's accounts' password when the stack runs it
# The simulator stands in for an operator's SMSC, which in production runs elsewhere: below the API
# and Redis (nice 0), above Ray's workers (Ray starts them at nice 15), so on a small machine it does
# not crowd out the control plane it is there to exercise.
SIM_NICENESS = 10


def start_simulator(
    workdir: Path, *args: str, accounts: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """The bundled simulator on a free port (extra *args* go to it, its log to ``workdir/sim.log``);
    returns the process and its port. *accounts* reach it through the environment, not ``ps``."""
    port_file = workdir / "sim.port"
    port_file.unlink(missing_ok=True)
    env = dict(os.environ)
    if accounts:
        env["ULAK_SIM_ACCOUNTS"] = ",".join(f"{k}:{v}" for k, v in accounts.items())
    proc = subprocess.Popen(
        [sys.executable, str(SIMULATOR), "--port", "0", "--port-file", str(port_file), *args],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "sim.log").open("w"),
        env=env,
    )
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, proc.pid, SIM_NICENESS)
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the SMSC simulator did not start; see {workdir / 'sim.log'}")
        time.sleep(0.05)
    return proc, int(port_file.read_text().split()[0])


def stack_file() -> Path:
    return default_state_dir() / "stack.json"


@dataclass(frozen=True)
class StackInfo:
    """Where a running stack's API is, and a key for it (what ``ulak submit`` etc. use by default)."""

    api_url: str
    token: str | None
    redis_url: str

    @staticmethod
    def load(path: Path | None = None) -> StackInfo | None:
        path = path or stack_file()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return StackInfo(data["api_url"], data.get("token"), data["redis_url"])

    def save(self, path: Path | None = None) -> None:
        path = path or stack_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds an API key
        with os.fdopen(fd, "w") as f:
            json.dump(self.__dict__, f)


def local_key(client: redis.Redis, *, saved: StackInfo | None, may_create: bool) -> str | None:
    """The API key ``ulak up`` saves for the local user: the saved one while this Redis knows it
    (whatever port the Redis has this time: comparing its URL wrote ``"token": null`` on every
    restart of the embedded one, issue 14 item 4), else a new one when the Redis has no key at all
    or *may_create*; else none (``ulak keys create`` makes one)."""
    if saved is not None and saved.token and lookup(client, saved.token):
        return saved.token
    if may_create or not list_keys(client):
        token, _ = create_key(client, name="local (ulak up)")
        return token
    return None


def write_config(settings: Settings, directory: Path) -> Path:
    """The effective configuration as YAML files (no passwords: binds name their variables)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = settings.model_dump(mode="json", exclude_none=True)
    for op in data["operators"]:
        for b in op["binds"]:
            b.pop("password", None)
    operators = {"operators": data.pop("operators")}
    (directory / "operators.yaml").write_text(yaml.safe_dump(operators, sort_keys=False))
    (directory / "ulak.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return directory


class LocalStack:
    """Redis, Ray, (the simulator), and the supervised API process; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        simulator: bool = False,
        sim_args: tuple[str, ...] = (),
        api_port: int | None = None,
        redirect_port: int | None = None,
        workdir: Path | None = None,
        save_info: bool = True,
        ready_when_bound: bool = True,
    ) -> None:
        self.settings = settings
        self.simulator = simulator
        self.sim_args = sim_args
        self.api_port = api_port if api_port is not None else settings.api.port
        if redirect_port is not None:  # the links' prefix follows it (LinksConfig.prefix)
            self.settings = settings.model_copy(
                update={"links": settings.links.model_copy(update={"port": redirect_port})}
            )
        self.workdir = workdir or default_state_dir() / "run"
        self.save_info = save_info
        # `ulak up` waits for the binds (/readyz); a cluster's head starts before its egress nodes
        # join, so its API is up once it answers (/healthz), its binds waiting to be placed.
        self.ready_path = "/readyz" if ready_when_bound else "/healthz"
        self._redis: RedisServer | None = None
        self._sim: subprocess.Popen[bytes] | None = None
        self._api: subprocess.Popen[bytes] | None = None
        self._redirect: subprocess.Popen[bytes] | None = None
        self._api_env: dict[str, str] = {}
        self._started_ray = False
        self.redis_url = ""
        self.api_url = ""
        self.redirect_url = ""
        self.token: str | None = None
        self.restarts = 0

    # ----------------------------------------------------------------------------------- start

    def start(self) -> LocalStack:
        """Start everything; if a piece fails, stop what was started and raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env: dict[str, str] = {}
        if self.simulator:
            port = self._start_simulator()
            self.settings = self._pointed_at_simulator(port, env)
        if self.settings.redis.url:
            self.redis_url = self.settings.redis.url
        else:
            data_dir = self.settings.redis.data_dir or default_state_dir() / "redis"
            self._redis = RedisServer.embedded(self.settings.redis, Path(data_dir)).start()
            self.redis_url = self._redis.url
        if not ray.is_initialized():
            ray.init(**ray_init_args(self.settings.ray, namespace=self.settings.ray.namespace))
            self._started_ray = True
        self.token = self._first_key()
        config_dir = write_config(self.settings, self.workdir / "configs")
        self.api_url = f"http://{self.settings.api.host}:{self.api_port}"
        self._api_env = {
            **os.environ,
            **env,
            "ULAK_REDIS__URL": self.redis_url,
            "ULAK_RAY__ADDRESS": ray.get_runtime_context().gcs_address,
            "ULAK_RAY__NAMESPACE": self.settings.ray.namespace,
        }
        self._config_dir = config_dir
        self._start_api()
        self._start_redirect()
        if self.save_info:
            StackInfo(self.api_url, self.token, self.redis_url).save()
        return self

    def _first_key(self) -> str | None:
        client = redisclient.client(self.redis_url)
        try:
            # Our own embedded Redis is the local user's: they may have a key for it. A Redis
            # someone else runs, with keys of its own, gets none of ours.
            may_create = not self.save_info or self._redis is not None
            return local_key(client, saved=StackInfo.load(), may_create=may_create)
        finally:
            client.close()

    def _start_simulator(self) -> int:
        accounts = {b.system_id: SIM_PASSWORD for op in self.settings.operators for b in op.binds}
        self._sim, port = start_simulator(self.workdir, *self.sim_args, accounts=accounts)
        return port

    def _pointed_at_simulator(self, port: int, env: dict[str, str]) -> Settings:
        operators = []
        for op in self.settings.operators:
            binds = []
            for b in op.binds:
                env[b.password_env] = SIM_PASSWORD
                binds.append(b.model_copy(update={"host": "127.0.0.1", "port": port}))
            operators.append(op.model_copy(update={"binds": tuple(binds)}))
        return self.settings.model_copy(update={"operators": tuple(operators)})

    def _start_api(self) -> None:
        self._api = self._service("api", "api", self.api_port)
        _wait_ready(
            self._api, f"{self.api_url}{self.ready_path}", what="the API", log=self.workdir / "api.log"
        )

    def _start_redirect(self) -> None:
        """The redirect service of the jobs' tracked links (``api.redirect``), ready when it answers."""
        links = self.settings.links
        self._redirect = self._service("api.redirect", "redirect", links.port)
        self.redirect_url = f"http://{links.host}:{links.port}"
        _wait_ready(
            self._redirect,
            f"{self.redirect_url}/healthz",
            what=f"the redirect service (is port {links.port} taken? set links.port)",
            log=self.workdir / "redirect.log",
        )

    def _service(self, module: str, name: str, port: int) -> subprocess.Popen[bytes]:
        """``python -m <module>`` on *port* with the stack's configuration, its output in <name>.log."""
        log = (self.workdir / f"{name}.log").open("a")
        return subprocess.Popen(
            [sys.executable, "-m", module, "--config-dir", str(self._config_dir), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=self._api_env,
        )

    # ------------------------------------------------------------------------------ supervise

    def supervise(self, *, poll: float = 1.0) -> None:
        """Keep the API and the redirect service running until interrupted (restarting either if it exits)."""
        while True:
            time.sleep(poll)
            if self._api is not None and self._api.poll() is not None:
                self.restarts += 1
                self._start_api()
            if self._redirect is not None and self._redirect.poll() is not None:
                self.restarts += 1
                self._start_redirect()

    # ----------------------------------------------------------------------------------- stop

    def stop(self) -> None:
        for process in (self._api, self._redirect):
            if process is not None:
                end_process(process, timeout=15)
        if ray.is_initialized():
            stop_actors(self.settings.ray.namespace)
        if self._started_ray:
            ray.shutdown()
        if self._redis is not None:
            self._redis.stop()
        if self._sim is not None and self._sim.poll() is None:
            self._sim.terminate()
            self._sim.wait(timeout=10)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def end_process(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not exited within *timeout* seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_ready(
    process: subprocess.Popen[bytes], url: str, *, what: str, log: Path, timeout: float = 90
) -> None:
    """Until *url* answers 200; an error naming *what* and its *log* if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited; see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready in {timeout:g} s; see {log}")
        time.sleep(0.2)


def stop_actors(namespace: str) -> None:
    """Unbind politely and remove the stack's detached actors (jobs resume from Redis next time)."""
    named: list[dict[str, Any]] = ray.util.list_named_actors(all_namespaces=True)
    mine = [a["name"] for a in named if a["namespace"] == namespace]
    binds = [ray.get_actor(n, namespace=namespace) for n in mine if n.startswith("bind:")]
    if binds:
        ray.wait([h.stop.remote() for h in binds], num_returns=len(binds), timeout=10)
    for name in mine:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace=namespace))
