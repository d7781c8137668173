"""WebhookActor: one per cluster, delivers the webhook outbox (see ``cluster.webhooks``)."""

from __future__ import annotations

import threading

import httpx
import redis
import structlog

from cluster.webhooks import WebhookDeliverer
from ulak import redisclient
from ulak.logging import configure_logging
from ulak.settings import WebhooksConfig

log = structlog.get_logger("ulak.webhooks")


class WebhookActor:
    def __init__(
        self,
        redis_url: str,
        config: WebhooksConfig,
        ledgers: list[str],
        secrets: dict[str, str] | None = None,
    ) -> None:
        configure_logging(json=True)
        self.deliverer = WebhookDeliverer(
            redisclient.client(redis_url),
            httpx.Client(timeout=config.timeout, follow_redirects=False),
            ledgers=ledgers,
            allow_private=config.allow_private_targets,
            secrets=secrets,
        )
        self.delivered = 0
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.delivered += self.deliverer.run_once()
            except redis.RedisError as exc:  # Redis restarting: try again shortly
                log.error("webhook.redis_error", error=str(exc))
                threading.Event().wait(1.0)
            except Exception:  # never end silently: say why, and carry on from the cursor
                log.exception("webhook.crashed")
                threading.Event().wait(1.0)

    def describe(self) -> dict[str, object]:
        return {"running": self._thread.is_alive(), "delivered": self.delivered}
