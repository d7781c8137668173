"""Redis clients for the control plane, the job runners and the pool: with a retry policy.

redis-py's own default retries a failed command three times within ~0.1 s, too short for a Redis
that restarts in seconds; these retry a failed command on a fresh connection a few times, backing off
up to a second, so a restart of a few seconds is a pause for them, not an error. Past that the error
is theirs to handle (the API answers 503, a job's runner waits).

A retried script may have run before its answer was lost. The binds' writes are fenced
(``ulak.dispatch.fence``): a write that finds its own fence value already set knows it ran, and is not
applied twice. They keep redis-py's short default (``retries=3``): a bind keeps what a failed write
did not take and tries it again itself.

A URL whose scheme is ``redis+cluster://`` (or ``rediss+cluster://``) names a Redis Cluster by some
of its nodes, ``redis+cluster://[user:password@]host:port[,host:port…]``; the client is then redis-py's
``RedisCluster``, which finds the rest of the nodes and sends each command to the shard of its keys
(following MOVED and ASK, which are not errors to retry). Ulak's keys are hash-tagged so that every
script call and MULTI is one slot (``ulak.keys``), so the same code runs on both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit

import hiredis
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.backoff
import redis.cluster
import redis.retry

RETRIES = 6  # about 3 s in all with the backoff below


class RedisUnavailable(Exception):
    """Redis could not be reached from another process (an actor's call): what it raised, as text.
    redis-py's own errors do not always survive Ray's pickling (the cluster client's arrive as a
    bare RayError), so an actor raises this instead (:func:`unavailable`)."""


# What Redis being away looks like to redis-py: a restarted server reading its AOF answers
# BusyLoadingError, a ConnectionError; a Redis Cluster with a shard down ClusterDownError (a
# ClusterError), or, from the client itself, SlotNotCoveredError, which is no RedisError at all.
UNREACHABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.SlotNotCoveredError,
    RedisUnavailable,
)


@contextlib.contextmanager
def unavailable() -> Iterator[None]:
    """Around an actor method's Redis calls: Redis away leaves the actor as :class:`RedisUnavailable`,
    which its caller can tell from a bug (``cluster.send.pool`` hands it to the runner, which waits)."""
    try:
        yield
    except UNREACHABLE as exc:
        raise RedisUnavailable(f"{type(exc).__name__}: {exc}") from None


_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _backoff() -> redis.backoff.AbstractBackoff:
    return redis.backoff.ExponentialWithJitterBackoff(base=0.05, cap=1.0)


CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS


def is_cluster(url: str) -> bool:
    """Whether *url* names a Redis Cluster (``redis+cluster://…``)."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def cluster_url(nodes: list[str], *, username: str | None = None, password: str | None = None) -> str:
    """The ``redis+cluster://`` URL of a cluster reached through *nodes* (``host:port``)."""
    auth = ""
    if password is not None:
        auth = f"{quote(username or '', safe='')}:{quote(password, safe='')}@"
    return f"redis+cluster://{auth}{','.join(nodes)}"


def _cluster_options(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    scheme, rest = url.split("://", 1)
    auth, _, hosts = rest.rpartition("@")
    hosts = hosts.split("/", 1)[0].split("?", 1)[0]
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        parts = urlsplit(f"//{item.strip()}")
        if not parts.hostname:
            raise ValueError(f"{url.rsplit('@', maxsplit=1)[-1]!r}: each cluster node must be host:port")
        nodes.append((parts.hostname, parts.port or 6379))
    options: dict[str, Any] = {"ssl": CLUSTER_SCHEMES[scheme.lower()]}
    if auth:
        user, _, password = auth.partition(":")
        options["username"] = unquote(user) or None
        options["password"] = unquote(password) or None
    return nodes, options


def client(url: str, *, retries: int = RETRIES, **options: Any) -> redis.Redis:
    """A ``redis.Redis`` for *url* that rides out a short outage (``retries`` times), or a
    ``RedisCluster`` for a cluster URL: the same commands, so typed as one (a cast, not a subclass)."""
    retry = redis.retry.Retry(_backoff(), retries, supported_errors=_ERRORS)
    if is_cluster(url):
        nodes, extra = _cluster_options(url)
        startup = [redis.cluster.ClusterNode(host, port) for host, port in nodes]  # type: ignore[no-untyped-call]
        cluster = redis.cluster.RedisCluster(startup_nodes=startup, retry=retry, **extra, **options)
        return cast(redis.Redis, cluster)
    return redis.Redis.from_url(url, retry=retry, **options)


def async_client(url: str, *, retries: int = RETRIES, **options: Any) -> redis.asyncio.Redis:
    """The same for ``redis.asyncio``."""
    retry = redis.asyncio.retry.Retry(_backoff(), retries, supported_errors=_ERRORS)
    if is_cluster(url):
        nodes, extra = _cluster_options(url)
        startup = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in nodes]
        cluster = redis.asyncio.cluster.RedisCluster(startup_nodes=startup, retry=retry, **extra, **options)
        return cast(redis.asyncio.Redis, cluster)
    return redis.asyncio.Redis.from_url(url, retry=retry, **options)


def read_many(client: redis.Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
    """The answers to *commands*, read-only ones with many arguments each (SMISMEMBER of a batch's
    ten thousand numbers), sent together in one round trip as a pipeline would.

    redis-py packs every argument in Python (type checks, then ``str.encode``): ~1–2 µs a number,
    more than Redis takes to answer for it, on the job's runner's path for every row. Here hiredis
    packs each command in C and the pipeline goes on a connection of *client*'s pool, ~0.2 µs a
    number. A Redis Cluster client (whose commands go to each key's shard) goes the usual way.

    Only for commands that may run twice: a connection lost on the way, the commands are sent again
    through the client (with its retries)."""
    if not isinstance(client, redis.Redis):  # RedisCluster: its own pipeline routes by slot
        return _pipelined(client, commands)
    pool = client.connection_pool
    connection: Any = pool.get_connection()
    try:
        connection.send_packed_command([hiredis.pack_command(command) for command in commands])
        return [connection.read_response() for _ in commands]
    except _ERRORS:
        connection.disconnect()
        return _pipelined(client, commands)
    except BaseException:
        connection.disconnect()  # an error answered: the answers after it are still to be read
        raise
    finally:
        pool.release(connection)


def _pipelined(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return cast(list[Any], pipe.execute())
