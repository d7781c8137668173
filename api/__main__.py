"""Serve the control plane: ``python -m api`` joins a running Ray and Redis and serves HTTP.

It needs ``ray.address`` and ``redis.url`` (``ulak up`` starts both and runs this with them set).
The binds and jobs are detached Ray actors: stopping or restarting this process does not stop them.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

import ray
import structlog
import uvicorn

from actors.factories import control_plane
from api.main import create_app
from cluster.plane import ControlPlane
from ulak.dispatch.routing import RoutingError, router_from_operators
from ulak.logging import configure_logging
from ulak.settings import ConfigError, load_settings

log = structlog.get_logger("ulak.api")


PURGE_INTERVAL = 3600.0


def _purge_hourly(plane: ControlPlane) -> None:
    """Apply ``jobs.retention_days`` now and every hour, fold the engagement since into the
    send-time model, and move the jobs' hour-old click and conversion events to Parquet; a failed
    round is logged and tried again."""
    while True:
        try:
            plane.purge()
        except Exception:
            log.exception("jobs.purge_failed")
        try:  # before the events move: either way each is read once (cluster.engagement.sendtimes)
            plane.refresh_send_times()
        except Exception:
            log.exception("sendtimes.refresh_failed")
        try:
            plane.compact_events()
        except Exception:
            log.exception("events.compact_failed")
        time.sleep(PURGE_INTERVAL)


def _supervise_binds(plane: ControlPlane) -> None:
    """Every ``jobs.bind_supervision`` seconds: make again the binds dead at two looks running
    (a bind that died with no job sending stayed dead until the next job, and no reply or receipt
    reached Ulak meanwhile). Logged; a failed round is tried again."""
    seen: set[Any] = set()
    while True:
        time.sleep(plane.settings.jobs.bind_supervision)
        try:
            dead, _ = plane.pool.probe()
            again = set(dead) & seen
            seen = set(dead) - again
            if again:
                replaced = plane.pool.replace_dead()
                for ref in replaced:
                    log.warning("bind.replaced_idle", operator=ref.operator, bind=ref.bind)
        except Exception:
            log.exception("bind.supervision_failed")


REBALANCE_INTERVAL = 5.0  # seconds between looks at how the binds are spread over the egress nodes


def _rebalance_binds(plane: ControlPlane) -> None:
    """Every ``REBALANCE_INTERVAL`` seconds while no job sends: move binds so each operator's are
    spread over the nodes that may hold them (``BindPool.rebalance``): binds made while one egress
    node was up, and a node that joins or comes back after a loss."""
    while True:
        time.sleep(REBALANCE_INTERVAL)
        try:
            if plane.sending():
                continue
            for ref in plane.pool.rebalance():
                log.info("bind.moved", operator=ref.operator, bind=ref.bind)
        except Exception:
            log.exception("bind.rebalance_failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--config-dir", type=Path, default=None)
    parser.add_argument("--host", default=None, help="default: api.host")
    parser.add_argument("--port", type=int, default=None, help="default: api.port")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config_dir)
        router_from_operators(settings.operators)  # MNP files naming no configured operator
    except (ConfigError, RoutingError) as exc:
        print(f"configs/operators.yaml: {exc}" if isinstance(exc, RoutingError) else exc, file=sys.stderr)
        return 2
    if not settings.redis.url or not settings.ray.address:
        print(
            "the API joins a running stack: set ULAK_REDIS__URL and ULAK_RAY__ADDRESS, or run `ulak up`",
            file=sys.stderr,
        )
        return 2
    configure_logging(json=not sys.stderr.isatty())
    ray.init(address=settings.ray.address, namespace=settings.ray.namespace, log_to_driver=False)
    plane = control_plane(settings, redis_url=settings.redis.url)
    plane.ensure_dispatch()
    threading.Thread(target=_purge_hourly, args=(plane,), name="ulak-purge", daemon=True).start()
    threading.Thread(target=_supervise_binds, args=(plane,), name="ulak-binds", daemon=True).start()
    threading.Thread(target=_rebalance_binds, args=(plane,), name="ulak-spread", daemon=True).start()
    uvicorn.run(
        create_app(plane),
        host=args.host or settings.api.host,
        port=args.port if args.port is not None else settings.api.port,
        log_level="warning",
        access_log=False,
    )
    plane.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
