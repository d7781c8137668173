"""Redis clients for the control plane, the job runners and the pool: with a retry policy.

redis-py's ``from_url`` clients retry nothing: after a Redis restart the first command on each pooled
connection fails with ``ConnectionError``, although the server is back. These retry a failed command
on a fresh connection a few times, backing off up to a second, so a restart of a few seconds is a
pause for them, not an error. Past that the error is theirs to handle (the API answers 503, a job's
runner waits).

Not for the binds' hot writes: a ledger script or an inbox push retried after Redis ran it but before
its answer arrived would run twice. A bind keeps what a failed write did not take and tries it again
itself.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.backoff
import redis.retry

RETRIES = 6  # about 3 s in all with the backoff below
_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _backoff() -> redis.backoff.AbstractBackoff:
    return redis.backoff.ExponentialWithJitterBackoff(base=0.05, cap=1.0)


def client(url: str, **options: Any) -> redis.Redis:
    """A ``redis.Redis`` for *url* that rides out a short outage."""
    return redis.Redis.from_url(
        url, retry=redis.retry.Retry(_backoff(), RETRIES, supported_errors=_ERRORS), **options
    )


def async_client(url: str, **options: Any) -> redis.asyncio.Redis:
    """The same for ``redis.asyncio``."""
    return redis.asyncio.Redis.from_url(
        url, retry=redis.asyncio.retry.Retry(_backoff(), RETRIES, supported_errors=_ERRORS), **options
    )
