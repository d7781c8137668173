"""RepliesActor: one per cluster, turns the binds' MO parts into replies (``cluster.engagement.replies``) and
sends surveys' follow-ups (``cluster.engagement.followups``), opt-out confirmations and keyword
answers (``cluster.engagement.confirmations``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import structlog

from cluster.engagement.confirmations import ConfirmationSender
from cluster.engagement.followups import FollowupSender
from cluster.engagement.replies import ReplyProcessor
from ulak import redisclient
from ulak.logging import configure_logging
from ulak.settings import Settings

log = structlog.get_logger("ulak.replies")


class RepliesActor:
    def __init__(self, redis_url: str, settings: Settings, plane: Callable[[], Any]) -> None:
        configure_logging(json=True)
        client = redisclient.client(redis_url)
        self.processor = ReplyProcessor(
            client, settings.replies, default_region=settings.ingest.default_region
        )
        self.followup_every = settings.replies.followup_seconds

        self.followups = FollowupSender(client, plane)
        self.confirmations = ConfirmationSender(client, plane)
        self.errors = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="replies", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ready = False
        last_followups = 0.0
        while True:
            try:
                if not ready:
                    self.processor.ensure_group()
                    ready = True
                self.processor.run_once(block_ms=500)
                if time.monotonic() - last_followups >= self.followup_every:
                    last_followups = time.monotonic()
                    self.followups.run_once()
                    self.confirmations.run_once()
            except redis.RedisError as exc:  # Redis away: the parts wait in their stream
                self._failed("replies.redis_error", exc)
            except Exception as exc:  # never end silently: say why, and carry on from the stream
                log.exception("replies.crashed")
                self._failed("replies.crashed", exc, logged=True)

    def _failed(self, event: str, exc: Exception, *, logged: bool = False) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if not logged:
            log.error(event, error=self.last_error)
        # Start again from this consumer's pending parts: what was read and not written is read again.
        self.processor.restart()
        threading.Event().wait(1.0)

    def describe(self) -> dict[str, Any]:
        return {
            "running": self._thread.is_alive(),
            "processed": self.processor.processed,
            "waiting_for_parts": self.processor.reassembler.waiting(),
            "followup_jobs": self.followups.maker.made,
            "confirmation_jobs": self.confirmations.maker.made,
            "errors": self.errors,
            "last_error": self.last_error,
        }
