"""Webhooks per endpoint, against a real Redis and real HTTP receivers: one that is down holds up
only its own queue, loses nothing and keeps its order; its dead letters replay."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import redis

from cluster import webhooks
from tests.helpers import wait_for
from tests.integration.stack import (
    WebhookReceiver,
)
from ulak import keys


def test_a_down_endpoint_holds_up_only_itself_and_its_dead_letters_replay(redis_client: redis.Redis) -> None:
    down, healthy = WebhookReceiver(failures=4), WebhookReceiver()
    for job, target in (("j-down", down), ("j-up", healthy)):
        redis_client.hset(keys.job(job), mapping={"webhook_url": target.url, "webhook_secret": "s3cret"})
    for i in range(20):  # interleaved, as jobs' batches come
        for job, target in (("j-down", down), ("j-up", healthy)):
            body = {"job_id": job, "delivery": f"{job}/{i}", "events": [{"type": "receipt", "row": i}]}
            webhooks.enqueue(redis_client, target.url, secret_of=f"job:{job}", body=body)
    deliverer = webhooks.WebhookDeliverer(
        redis_client,
        httpx.Client(timeout=5),
        ledgers=[],
        max_attempts=4,
        backoff=0.2,
        allow_private=True,
        idle=0.01,
    )
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            deliverer.run_once()

    threading.Thread(target=loop, daemon=True).start()
    try:
        # The healthy one is delivered at once, in order, while the other is failing.
        wait_for(lambda: len(healthy.accepted) == 20, timeout=10, what="the healthy endpoint")
        assert healthy.accepted == [f"j-up/{i}" for i in range(20)]
        assert down.accepted == []

        # The failing one's head goes to the dead letters after 4 attempts; the rest follow in order.
        def down_endpoint() -> dict[str, Any]:
            [found] = [e for e in webhooks.endpoints(redis_client) if e["url"] == down.url]
            return found

        # A receiver records a delivery before the deliverer takes it off the queue: wait for both.
        wait_for(
            lambda: len(down.accepted) == 19 and down_endpoint()["queued"] == 0,
            timeout=20,
            what="the rest of the failing endpoint",
        )
        assert down.accepted == [f"j-down/{i}" for i in range(1, 20)]
        endpoint = down_endpoint()
        assert (endpoint["queued"], endpoint["dead"], endpoint["last_error"]) == (0, 1, "HTTP 503")
        [dead] = webhooks.dead_letters(redis_client, endpoint["id"])
        assert (dead["delivery"], dead["error"]) == ("j-down/0", "HTTP 503")
        assert redis_client.hget(keys.job_counters("j-down"), "webhook_dead") == b"1"
        # Replayed: delivered, nothing lost.
        assert webhooks.replay(redis_client, endpoint["id"]) == 1
        wait_for(lambda: len(down.accepted) == 20, timeout=10, what="the replayed delivery")
        assert down.accepted[-1] == "j-down/0"
        assert webhooks.dead_letters(redis_client, endpoint["id"]) == []
    finally:
        stop.set()
        time.sleep(0.1)
        down.server.shutdown()
        healthy.server.shutdown()
