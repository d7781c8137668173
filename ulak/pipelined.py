"""One Redis connection that many asyncio tasks share, each command written as it comes.

Redis answers a connection's commands in the order they came, so a FIFO of futures is all the
bookkeeping a shared connection needs: no pool to take a connection from and give it back to, no
per-call timer. It serves the redirect service's one hot command (``api.redirect``: one script call
a click), where redis-py's asyncio client spent more CPU than the script did in Redis, and the
thirty-odd requests a worker has in flight share one socket (their answers arrive in few reads).

What it does not do, on purpose:

* retry a command that was written: a connection lost with commands in flight fails each of them
  with ``redis.exceptions.ConnectionError`` (they may or may not have run; a click must not count
  twice), and the next command connects again;
* run on a Redis Cluster, or with URL options beyond host, port, unix path, db, user, password and
  TLS with the system's trust (``supports``): callers keep redis-py for those.

A command waiting longer than *timeout* seconds drops the connection (a Redis that stopped
answering): its commands fail as above.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Any

import hiredis
import redis.exceptions
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

_PLAIN = {"host", "port", "db", "username", "password", "path", "connection_class"}


def supports(url: str) -> bool:
    """Whether *url* is one this connection can reach (see the module docstring)."""
    try:
        options = parse_url(url)
    except ValueError:
        return False
    return set(options) <= _PLAIN and options.get("connection_class") in (
        None,
        SSLConnection,
        UnixDomainSocketConnection,
    )


def _answer(future: asyncio.Future[Any], reply: Any) -> None:
    if future.done():
        return
    if isinstance(reply, redis.exceptions.ResponseError):
        text = str(reply)
        if text.startswith("NOSCRIPT"):
            reply = redis.exceptions.NoScriptError(text)
        elif text.startswith(("NOAUTH", "WRONGPASS")):
            reply = redis.exceptions.AuthenticationError(text)
        future.set_exception(reply)
    else:
        future.set_result(reply)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()  # sent, unanswered, and when
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=redis.exceptions.ResponseError)
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if not self.waiting:  # an answer nobody asked for: the stream is not what we think
                self.abort()
                return
            _answer(self.waiting.popleft()[0], reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(
                    redis.exceptions.ConnectionError(f"the connection to Redis was lost ({exc})")
                )

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class PipelinedRedis:
    """See the module docstring. ``await execute("EVALSHA", sha, 1, key, *args)``; ``close()``."""

    def __init__(self, url: str, *, timeout: float = 5.0, connect_timeout: float = 5.0) -> None:
        if not supports(url):
            raise ValueError(f"{url.rsplit('@', 1)[-1]!r}: a URL this connection cannot reach (see supports)")
        self._options = parse_url(url)
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._watch: asyncio.TimerHandle | None = None

    async def execute(self, *args: Any) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.lost:
            protocol = await self._connect()
        return await self._send(protocol, args)

    def _send(self, protocol: _Protocol, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if protocol.lost or protocol.transport is None or protocol.transport.is_closing():
            # lost while connecting: nothing would ever answer it
            future.set_exception(redis.exceptions.ConnectionError("the connection to Redis was lost"))
            return future
        protocol.waiting.append((future, time.monotonic()))
        # Written at once: gathering a loop turn's commands into one write measured slower
        # (16.1-16.7k redirects/s against 17.3-17.9k, alternated).
        protocol.transport.write(hiredis.pack_command(args))
        return future

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and not self._protocol.lost:
                return self._protocol  # another task connected while this one waited
            loop = asyncio.get_running_loop()
            options = self._options
            protocol = None
            try:
                async with asyncio.timeout(self._connect_timeout):
                    if options.get("connection_class") is UnixDomainSocketConnection:
                        _, protocol = await loop.create_unix_connection(_Protocol, options["path"])
                    else:
                        tls = (
                            ssl.create_default_context()
                            if options.get("connection_class") is SSLConnection
                            else None
                        )
                        _, protocol = await loop.create_connection(
                            _Protocol,
                            options.get("host", "localhost"),
                            options.get("port", 6379),
                            ssl=tls,
                        )
                    hello = []
                    if options.get("password"):
                        user = [options["username"]] if options.get("username") else []
                        hello.append(self._send(protocol, ("AUTH", *user, options["password"])))
                    if options.get("db"):
                        hello.append(self._send(protocol, ("SELECT", options["db"])))
                    for answer in hello:
                        await answer
            except BaseException as exc:
                if protocol is not None:
                    protocol.abort()
                if isinstance(exc, OSError | TimeoutError):
                    raise redis.exceptions.ConnectionError(f"cannot reach Redis: {exc}") from None
                raise
            self._protocol = protocol
            if self._watch is None:
                self._watch = loop.call_later(1.0, self._check)
            return protocol

    def _check(self) -> None:
        """Drop a connection whose oldest command has waited over the timeout (Redis stopped)."""
        protocol = self._protocol
        if (
            protocol is not None
            and protocol.waiting
            and time.monotonic() - protocol.waiting[0][1] > self._timeout
        ):
            protocol.abort()
        self._watch = asyncio.get_running_loop().call_later(1.0, self._check)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
