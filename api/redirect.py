"""The redirect service: ``GET /<code>`` answers 302 to the job's link and records the click.

``python -m api.redirect`` serves it on ``links.host``:``links.port`` (``ulak up`` runs one) with
``links.workers`` processes sharing the port (one per CPU by default: a redirect is CPU in Python,
and one process topped out near 2,000/s); run more machines behind a load balancer for more: they
share nothing but Redis. No API key:
a link is public by nature, and an unknown, malformed or expired code, or one whose job is gone, is
the same plain 404, so nothing is learnt by guessing. What counts as a click, a unique click or a
bot is ``ulak.links``'s.

A bare ASGI app, not FastAPI: it has one route. On a single Redis each redirect is one Redis call
(``links.follow_script``: the code's owner, the scanner rule and the click in one script) plus a
cached read of the job's target; on a Redis Cluster, whose slots keep those keys apart, three (the
code's job and row, its first part's times, ``links.CLICK_SCRIPT``). Both record the same click.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import astuple
from typing import Any

import redis.exceptions
import structlog
import uvicorn

from ulak import keys, links, pipelined, redisclient
from ulak.logging import configure_logging
from ulak.pipelined import PipelinedRedis
from ulak.records import LinkOwner
from ulak.settings import ConfigError, load_settings

log = structlog.get_logger("ulak.redirect")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

TARGET_SECONDS = 60.0  # how long a job's target (or its absence) is cached in the process


class RedirectApp:
    """The ASGI app. *scanner_seconds*: a click this soon after its message reached the phone is a
    bot (``links.scanner_seconds``). *forwarded_for*: take the client address from
    ``X-Forwarded-For`` (behind a load balancer that sets it), else from the connection.
    *offset_clock*: stamp clicks with the runners' offset clock (``jobs.clock: offset``, tests and
    rehearsals: ``ulak.clock``), read from Redis at most every 0.1 s. *one_call*: the single-Redis
    path (default: unless *redis_url* names a cluster). *clock*: the real time (tests)."""

    def __init__(
        self,
        redis_url: str,
        *,
        scanner_seconds: float = 0.0,
        forwarded_for: bool = False,
        offset_clock: bool = False,
        one_call: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = redis_url
        self._one_call = not redisclient.is_cluster(redis_url) if one_call is None else one_call
        self._clock = clock
        self._offset_clock = offset_clock
        self._offset = (0.0, -float("inf"))  # seconds, when read (monotonic)
        self._scanner_seconds = scanner_seconds
        self._forwarded_for = forwarded_for
        self._redis: Any = None
        self._click: Any = None
        self._follow_text = links.follow_script()
        self._follow_sha = ""
        self._pipelined: PipelinedRedis | None = None
        self._salt = b""
        self._targets: dict[str, tuple[float, str | None]] = {}

    async def start(self) -> None:
        self._redis = redisclient.async_client(self._url)
        self._click = self._redis.register_script(links.CLICK_SCRIPT)
        if self._one_call:  # a cluster's path never calls it
            self._follow_sha = await self._redis.script_load(self._follow_text)
            if pipelined.supports(self._url):
                self._pipelined = PipelinedRedis(self._url)
        await self._redis.set(keys.LINK_SALT, secrets.token_bytes(32), nx=True)
        self._salt = await self._redis.get(keys.LINK_SALT)

    async def stop(self) -> None:
        if self._pipelined is not None:
            await self._pipelined.close()
        if self._redis is not None:
            await self._redis.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if path == "/healthz":
            await _respond(send, 200, b"ok")
            return
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"only GET and HEAD", extra=[(b"allow", b"GET, HEAD")])
            return
        code = path[1:].encode("utf-8", "replace")
        if not links.CODE.fullmatch(code):
            await _respond(send, 404, b"not found")
            return
        try:
            target = await self._follow(code.decode(), method, scope)
        except redisclient.UNREACHABLE as exc:
            log.warning("redirect.redis_unavailable", error=f"{type(exc).__name__}: {exc}")
            await _respond(send, 503, b"try again in a moment", extra=[(b"retry-after", b"2")])
            return
        if target is None:
            await _respond(send, 404, b"not found")
            return
        await _respond(send, 302, b"", extra=[(b"location", target.encode())])

    async def _follow(self, code: str, method: str, scope: Scope) -> str | None:
        """The code's target, the fetch recorded; None for a code that leads nowhere (now)."""
        headers = dict(scope["headers"])
        agent = headers.get(b"user-agent", b"").decode("latin-1")
        address = (scope.get("client") or ("", 0))[0]
        if self._forwarded_for and b"x-forwarded-for" in headers:
            address = headers[b"x-forwarded-for"].decode("latin-1").split(",")[0].strip()
        hashed = links.address_hash(address, self._salt)
        bot = links.is_bot(method, agent)
        if self._one_call:
            # The script counts the click before the target is known: a job whose codes exist has
            # a link (``{link}`` needs ``link_url``), and the script finds no job that is gone.
            now = self._clock()
            args = links.follow_args(
                bot=bot,
                user_agent=agent,
                address_hash=hashed,
                scanner_seconds=self._scanner_seconds,
                stamp=now + await self._clock_offset(),
                now=now,
            )
            job_id = await self._follow_once(keys.link(code), args)
            return None if job_id is None else await self._target(job_id.decode())
        found = await self._redis.get(keys.link(code))
        if found is None:
            return None
        job_id, row, ledger = astuple(LinkOwner.read(found))
        target = await self._target(job_id)
        if target is None:
            return None
        bot = bot or await self._too_soon(job_id, row, ledger)
        stamp = self._clock() + await self._clock_offset()
        args = links.click_args(row=row, bot=bot, user_agent=agent, address_hash=hashed, now=lambda: stamp)
        await self._click(keys=links.click_keys(job_id), args=args)
        return target

    async def _follow_once(self, link: str, args: list[str]) -> Any:
        """``follow_script`` by its digest, on the worker's shared pipelined connection where the URL
        allows (``ulak.pipelined``: redis-py's pool and Script wrapper took a third of a worker's
        CPU), loaded again if Redis forgot it (a restart, ``SCRIPT FLUSH``)."""
        execute = self._pipelined.execute if self._pipelined is not None else self._redis.execute_command
        try:
            return await execute("EVALSHA", self._follow_sha, 1, link, *args)
        except redis.exceptions.NoScriptError:
            self._follow_sha = await self._redis.script_load(self._follow_text)
            return await execute("EVALSHA", self._follow_sha, 1, link, *args)

    async def _clock_offset(self) -> float:
        if not self._offset_clock:
            return 0.0
        offset, read_at = self._offset
        if time.monotonic() - read_at >= 0.1:
            raw = await self._redis.get(keys.CLOCK_OFFSET)
            offset = float(raw) if raw else 0.0
            self._offset = (offset, time.monotonic())
        return offset

    async def _too_soon(self, job_id: str, row: int, ledger: str) -> bool:
        """Whether the click comes within *scanner_seconds* of its message's delivery: carriers'
        scanners fetch a link as the message arrives, people later. One HMGET in the ledger's slot."""
        if not self._scanner_seconds or not ledger:
            return False
        bucket, field = keys.job_bucket(job_id, ledger, keys.row_bucket(row)), keys.row_field(row)
        fields = await self._redis.hmget(bucket, [f"{field}:1:m", f"{field}:1:r"])
        at = links.sent_at(fields)
        return at is not None and self._clock() - at < self._scanner_seconds

    async def _target(self, job_id: str) -> str | None:
        now = time.monotonic()
        cached = self._targets.get(job_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        raw = await self._redis.hget(keys.job(job_id), "options")
        target = None
        if raw is not None:
            options = json.loads(raw)
            if options.get("link_url"):
                target = links.target_url(options["link_url"], options.get("utm"))
        if len(self._targets) > 10_000:  # jobs come and go: forget the lot now and then
            self._targets.clear()
        self._targets[job_id] = (now + TARGET_SECONDS, target)
        return target

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"cache-control", b"no-store"),  # every click reaches us: none is answered from a cache
    (b"referrer-policy", b"no-referrer"),
]


async def _respond(send: Send, status: int, body: bytes, *, extra: list[tuple[bytes, bytes]] = []) -> None:  # noqa: B006 - never mutated
    headers = [*_HEADERS, (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.redirect", description=__doc__)
    parser.add_argument("--config-dir", default=None)
    parser.add_argument("--host", default=None, help="default: links.host")
    parser.add_argument("--port", type=int, default=None, help="default: links.port")
    parser.add_argument(
        "--forwarded-for", action="store_true", help="client address from X-Forwarded-For (behind a proxy)"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config_dir)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not settings.redis.url:
        print("the redirect service needs Redis: set ULAK_REDIS__URL, or run `ulak up`", file=sys.stderr)
        return 2
    configure_logging(json=not sys.stderr.isatty())
    workers = settings.links.workers or os.cpu_count() or 1
    host = args.host or settings.links.host
    port = args.port if args.port is not None else settings.links.port
    offset = settings.jobs.clock == "offset"
    if workers == 1:
        app: Any = _app(settings.redis.url, settings.links.scanner_seconds, args.forwarded_for, offset)
    else:
        # Several processes on one listening socket (uvicorn's supervisor binds it, starts the
        # workers, and starts one again if it dies); each builds its app from the environment.
        os.environ[_APP_ENV] = json.dumps(
            [settings.redis.url, settings.links.scanner_seconds, args.forwarded_for, offset]
        )
        app = "api.redirect:app_from_environment"
    uvicorn.run(
        app,
        host=host,
        port=port,
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # the client's address is ours to read: X-Forwarded-For only if told
        lifespan="on",
    )
    return 0


_APP_ENV = "ULAK_REDIRECT_APP"  # what a worker process builds its app from (set by main)


def _app(
    redis_url: str, scanner_seconds: float, forwarded_for: bool, offset_clock: bool = False
) -> RedirectApp:
    return RedirectApp(
        redis_url, scanner_seconds=scanner_seconds, forwarded_for=forwarded_for, offset_clock=offset_clock
    )


def app_from_environment() -> RedirectApp:
    """A worker's app (``uvicorn --factory``), from what :func:`main` put in the environment."""
    _die_with_parent()
    configure_logging(json=not sys.stderr.isatty())
    redis_url, scanner_seconds, forwarded_for, offset_clock = json.loads(os.environ[_APP_ENV])
    return _app(redis_url, float(scanner_seconds), bool(forwarded_for), bool(offset_clock))


if __name__ == "__main__":
    sys.exit(main())


def _die_with_parent() -> None:
    """A worker ends when its supervisor does, even by SIGKILL (Linux's PR_SET_PDEATHSIG): an orphan
    would go on answering on the port with nobody to stop it."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the supervisor was gone before the call
        os.kill(os.getpid(), signal.SIGTERM)
