"""Back-pressure between the one task that reads an upload and the driver that takes its blocks.

Ray Data's executor takes every block the read task yields as soon as it exists, whatever the
consumer of ``iter_internal_ref_bundles`` has taken: for a plain iterator it has no "external
consumer" and lets output through without limit. pyarrow reads a CSV about four times as fast as the
blocks can be prepared, so the read ran up to 70 blocks (300 MB of the object store for five million
rows) ahead of the driver, and a larger file would have been read whole into the store. Ray Data's own
object-store limit does bound it once the iterator is marked as an external consumer, but its
scheduling loop then spins a core in the driver and the run takes twice as long (BENCHMARKS.md,
ingest).

So the read paces itself on credits: the driver pushes the rows of each block it takes onto a Redis
list, and the read task, before yielding more, pops credits until what it has yielded and the driver
has not taken is below :data:`AHEAD_BYTES`. The read blocks in ``BLPOP``: nothing spins. Rows, not
bytes, are credited (Ray Data joins the read's tables into larger blocks, keeping the rows); the read
converts them back to its own tables' byte sizes.
"""

from __future__ import annotations

import collections
import secrets
from typing import Any

from ulak import keys, redisclient

# How far (in Arrow bytes) the read may run ahead of the driver (``ingest.read_ahead_mib``). It must be
# above Ray Data's block builder, which holds back less than a 2 MiB block (``target_max_block_size``),
# so the read never waits for rows the driver cannot have yet; small enough that the object store
# holds a slice of the upload, not all of it.
AHEAD_BYTES = 64 << 20
# A driver that takes no block for this long has stopped (Ray also ends the read task when its driver
# dies); the read gives up with an error instead of waiting forever.
WAIT_SECONDS = 600
_TTL_SECONDS = 3600


class ReadStalled(RuntimeError):
    """The driver took no block for ``WAIT_SECONDS``."""


class Pacing:
    """One upload's credit line. Made in the driver (:meth:`new`), shipped to the read task."""

    def __init__(
        self, redis_url: str, key: str, *, ahead_bytes: int = AHEAD_BYTES, wait_seconds: int = WAIT_SECONDS
    ) -> None:
        self.redis_url = redis_url
        self.key = key
        self.ahead_bytes = ahead_bytes
        self.wait_seconds = wait_seconds
        self._client: Any = None
        self._outstanding: collections.deque[list[int]] = collections.deque()  # [rows, bytes] a table
        self._bytes = 0

    @classmethod
    def new(cls, redis_url: str, **kwargs: Any) -> Pacing:
        return cls(redis_url, keys.ingest_credits(secrets.token_hex(8)), **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # Shipped to the read task without its connection or counts.
        return (_rebuild, (self.redis_url, self.key, self.ahead_bytes, self.wait_seconds))

    def _redis(self) -> Any:
        if self._client is None:
            self._client = redisclient.client(self.redis_url)
        return self._client

    # The read task's side.

    def before_yield(self, rows: int, nbytes: int) -> None:
        """Wait until the driver is close enough behind, then count a table of *rows* rows and
        *nbytes* bytes as yielded."""
        while self._bytes > self.ahead_bytes:
            popped = self._redis().blpop([self.key], timeout=self.wait_seconds)
            if popped is None:
                raise ReadStalled(
                    f"the ingest driver took no block for {self.wait_seconds} s; the read stopped"
                )
            self._credit(int(popped[1]))
        if rows:
            self._outstanding.append([rows, nbytes])
            self._bytes += nbytes

    def _credit(self, rows: int) -> None:
        while rows and self._outstanding:
            table = self._outstanding[0]
            taken = min(rows, table[0])
            share = table[1] * taken // table[0]
            table[0] -= taken
            table[1] -= share
            self._bytes -= share
            rows -= taken
            if table[0] == 0:
                self._bytes -= table[1]
                self._outstanding.popleft()

    # The driver's side.

    def taken(self, rows: int) -> None:
        """The driver has taken a block of *rows* rows."""
        if rows:
            pipe = self._redis().pipeline(transaction=False)
            pipe.rpush(self.key, rows)
            pipe.expire(self.key, _TTL_SECONDS)
            pipe.execute()

    def close(self) -> None:
        """The upload has been read (or given up): drop the credit list."""
        try:
            self._redis().delete(self.key)
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None


def _rebuild(redis_url: str, key: str, ahead_bytes: int, wait_seconds: int) -> Pacing:
    return Pacing(redis_url, key, ahead_bytes=ahead_bytes, wait_seconds=wait_seconds)
