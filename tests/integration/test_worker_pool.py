"""Ray's idle task workers end (``ulak.runtime.RAY_WORKER_POOL``): a job's ingest readers and block
preparers held ~500 MiB for the whole send when Ray kept them idle for ever."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.helpers import wait_for


def test_an_idle_task_worker_ends_and_the_next_task_gets_a_new_one(ray_session: Any) -> None:
    ray = ray_session

    @ray.remote(num_cpus=1)
    def worker_pid() -> int:
        return os.getpid()

    first = ray.get(worker_pid.remote(), timeout=60)
    assert Path(f"/proc/{first}").exists()
    wait_for(lambda: not Path(f"/proc/{first}").exists(), timeout=60, what="the idle task worker to end")
    second = ray.get(worker_pid.remote(), timeout=60)
    assert second != first
