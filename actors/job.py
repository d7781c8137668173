"""JobActor: one per job, detached and restarted by Ray if its process dies; the work is JobRunner's.

The actor starts the runner in its constructor, so a restart (a new process, same constructor
arguments) resumes the job from Redis without anyone calling it. When the job reaches a terminal state
the actor removes itself.
"""

from __future__ import annotations

import threading
from typing import Any

import ray

from cluster.send.pool import BindMaker, BindPool
from cluster.send.runner import JobRunner
from ulak.logging import configure_logging
from ulak.runtime import relax_gc
from ulak.settings import Settings


class JobActor:
    def __init__(
        self, job_id: str, settings: Settings, redis_url: str, namespace: str, binds: BindMaker
    ) -> None:
        configure_logging(json=True)
        relax_gc()  # the runner builds and holds parts by the thousand
        self.job_id = job_id
        pool = BindPool(settings, redis_url=redis_url, namespace=namespace, maker=binds)
        self.runner = JobRunner(
            job_id, settings=settings, redis_url=redis_url, namespace=namespace, pool=pool
        )
        self.state = ""
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.state = self.runner.run().value
        self.runner.close()
        ray.kill(ray.get_runtime_context().current_actor)  # finished: free the name and the process

    def describe(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "running": self._thread.is_alive(), "state": self.state}
