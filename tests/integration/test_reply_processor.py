"""The replies processor against a real Redis: written once whatever dies when, duplicates once."""

from __future__ import annotations

import time

import redis

from cluster.engagement.replies import ReplyProcessor, counts, recent
from ulak import keys
from ulak.replies.mo import MoPart
from ulak.settings import RepliesConfig
from ulak.text.alphabet import alphabet


def _part(
    text: str, *, seq: int = 0, total: int = 0, at: float = 0.0, source: str = "905321112233"
) -> MoPart:
    septets = alphabet().to_septets(text)
    assert septets is not None
    return MoPart(
        smsc="tcell",
        source=source,
        dest="4545",
        data_coding=0,
        body=septets,
        received=time.time() + at,  # now: a part older than replies.concat_timeout expires
        concat=(42, total, seq) if total else None,
    )


def _append(client: redis.Redis, *parts: MoPart) -> None:
    for part in parts:
        client.xadd(keys.MO_PARTS, part.pack())  # type: ignore[arg-type]


def test_a_processor_that_dies_mid_message_leaves_nothing_lost_or_doubled(redis_client: redis.Redis) -> None:
    config = RepliesConfig()
    first = ReplyProcessor(redis_client, config)
    first.ensure_group()
    _append(redis_client, _part("Kargo gecikti, ", seq=1, total=2), _part("RET", source="905321112244"))
    assert first.run_once(block_ms=10) == 1  # the whole one; the first half is held, unacknowledged
    assert first.reassembler.waiting() == 1
    # It dies here. The next one reads the held part again from its pending list.
    second = ReplyProcessor(redis_client, config)
    second.ensure_group()
    assert second.run_once(block_ms=10) == 0 and second.reassembler.waiting() == 1
    _append(redis_client, _part("lütfen arayin", seq=2, total=2, at=1.0))
    _append(redis_client, _part("lütfen arayin", seq=2, total=2, at=2.0))  # the SMSC, again
    assert second.run_once(block_ms=10) == 1
    assert second.run_once(block_ms=10) == 0
    replies = recent(redis_client, limit=10)
    assert [(r["number"], r["kind"], r["text"]) for r in replies] == [
        ("905321112233", "reply", "Kargo gecikti, lütfen arayin"),
        ("905321112244", "optout", "RET"),
    ]
    c = counts(redis_client)
    assert (c["messages"], c["parts"], c["optout"], c["reply"], c["duplicate"]) == (2, 3, 1, 1, 1)
    assert redis_client.xlen(keys.MO_PARTS) == 0  # every part acknowledged and deleted
    assert redis_client.sismember(keys.OPTOUT, "905321112244")
    assert recent(redis_client, limit=10, before=replies[0]["id"])[0]["id"] == replies[1]["id"]


def test_a_resend_is_known_to_the_next_processor_too(redis_client: redis.Redis) -> None:
    # The SMSC sends a part again when our answer was lost; the processor that read the first copy
    # may have restarted (or another node's took over) by then: it is still counted once.
    config = RepliesConfig()
    first = ReplyProcessor(redis_client, config)
    first.ensure_group()
    part = _part("Tesekkurler ederim", source="905321119900")
    _append(redis_client, part)
    assert first.run_once(block_ms=10) == 1
    second = ReplyProcessor(redis_client, config)
    second.ensure_group()
    _append(redis_client, part)
    assert second.run_once(block_ms=10) == 0
    mine = [r for r in recent(redis_client, limit=50) if r["number"] == "905321119900"]
    assert len(mine) == 1 and counts(redis_client)["duplicate"] >= 1
