"""Process-level tuning for the processes that handle every message (bind actors, job runners)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ulak.settings import RayConfig

# Collect the youngest generation every 50,000 net allocations instead of Python's 700.
_THRESHOLDS = (50_000, 50, 100)


def relax_gc() -> None:
    """Make the cyclic garbage collector run rarely in this process.

    A bind makes a few short-lived objects per message (parts unpickled in batches, events, PDUs)
    and keeps thousands of queued parts alive. With the default thresholds the collector ran every
    700 allocations and walked them all: ~15 % of a bind actor's CPU, showing in py-spy as time in
    whatever allocated. Those objects form no reference cycles (reference counting frees them), so
    collecting less often costs no memory. What is alive at this call (modules, configuration) is
    frozen out of the collector's sight.
    """
    gc.freeze()
    gc.set_threshold(*_THRESHOLDS)


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection inside the block (building a campaign's parts in bulk in a process we do
    not own, such as a user's driver); the collector runs as configured again afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# Ray's worker pool. Ray keeps as many idle task workers as the node has CPUs, for ever: after a
# job's ingest its file reader and block preparers idled at ~450 MiB PSS together for the whole send
# (bench_product.py, 1M rows: the stack's summed peak PSS 3.07-3.10 GiB, 2.72 without them). What
# they hold is mostly what they loaded (handing freed memory back to the system gave ~50 MiB), so
# here an idle task worker ends. Not at once: the next ingest starts new ones, a few seconds on a
# busy machine (with 10 s, the test suite's jobs, one after another, paid ~30 s more), so after 30 s.
# Actors are not task workers: a bind or a job's actor is never ended for being idle.
RAY_WORKER_POOL: dict[str, int] = {
    "num_workers_soft_limit": 0,
    "idle_worker_killing_time_threshold_ms": 30_000,
}


def ray_worker_pool_env() -> dict[str, str]:
    """:data:`RAY_WORKER_POOL` as the environment ``ray start`` reads it (``RAY_<name>``), for nodes
    started by command; a Ray started by ``ray.init`` takes it as ``_system_config``."""
    return {f"RAY_{name}": str(value) for name, value in RAY_WORKER_POOL.items()}


def ray_init_args(config: RayConfig, *, namespace: str | None = None) -> dict[str, Any]:
    """``ray.init``'s arguments for a process that starts Ulak (the local stack, ``ulak up``): joins
    ``ray.address`` when it is set, else starts a Ray of its own, with our worker pool's settings."""
    return {
        # Unset means a Ray of our own: not a cluster some earlier `ray start` on this machine left
        # its address for (Ray's default joins that one).
        "address": config.address or "local",
        "num_cpus": config.num_cpus,
        "namespace": namespace,
        "include_dashboard": False,
        "log_to_driver": False,
        # a Ray of our own takes our worker pool's settings; a cluster has them from its nodes
        "_system_config": None if config.address else dict(RAY_WORKER_POOL),
    }
