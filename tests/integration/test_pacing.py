"""The read paces itself on the driver's credits (ingest.pacing), over a real Redis."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import redis

from ingest.pacing import Pacing, ReadStalled
from ingest.prepare import prepare
from ingest.spec import CampaignSpec
from tests.integration.binds import OPERATORS
from ulak.settings import IngestConfig


def _blpops(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get("cmdstat_blpop", {}).get("calls", 0))


def test_the_read_waits_for_credits_and_counts_them_back_in_bytes(
    redis_client: redis.Redis, redis_server_url: str
) -> None:
    driver = Pacing.new(redis_server_url, ahead_bytes=1000)
    reader: Pacing = pickle.loads(pickle.dumps(driver))  # as shipped to the read task
    assert (reader.key, reader.ahead_bytes) == (driver.key, 1000)
    reader.before_yield(100, 800)
    reader.before_yield(100, 800)  # 800 yielded and not taken is under the limit: no wait
    waited = threading.Event()

    def third() -> None:
        reader.before_yield(10, 80)  # 1,600 outstanding: waits until the driver takes 100 rows
        waited.set()

    t = threading.Thread(target=third)
    t.start()
    time.sleep(0.2)
    assert not waited.is_set()
    driver.taken(50)  # half a table: 400 bytes back, 1,200 still over
    time.sleep(0.2)
    assert not waited.is_set()
    driver.taken(50)
    t.join(5)
    assert waited.is_set()
    assert reader._bytes == 800 + 80
    driver.close()
    assert not redis_client.exists(driver.key)


def test_a_driver_that_takes_nothing_stops_the_read_with_a_clear_error(redis_server_url: str) -> None:
    reader = Pacing.new(redis_server_url, ahead_bytes=10, wait_seconds=1)
    reader.before_yield(5, 100)
    with pytest.raises(ReadStalled, match="took no block for 1 s"):
        reader.before_yield(5, 100)
    reader.close()


def test_a_paced_read_prepares_every_row(
    ray_session: Any, redis_client: redis.Redis, redis_server_url: str, tmp_path: Path
) -> None:
    n = 300_000  # ~10 MiB as Arrow: the read has to wait for the driver at a 4 MiB read-ahead
    numbers = [f"90532{i:07d}" for i in range(n)]
    numbers[n - 1] = numbers[0]
    pacsv.write_csv(pa.table({"phone": numbers, "ad": ["x"] * n, "tutar": ["1"] * n}), tmp_path / "big.csv")
    before = _blpops(redis_client)
    prepared = prepare(
        tmp_path / "big.csv",
        CampaignSpec(template="Merhaba {ad}, {tutar} TL"),
        config=IngestConfig(read_ahead_mib=4),
        operators=OPERATORS,
        redis_url=redis_server_url,
        directory=tmp_path / "prepared",
    )
    assert _blpops(redis_client) > before  # the read did wait
    assert prepared.preview.rows == n
    assert prepared.preview.accepted == prepared.accepted_table().num_rows == n - 1
    assert prepared.accepted_table().column("row").to_pylist() == list(range(1, n))
    assert prepared.preview.rejected == {"duplicate": 1}
    assert not redis_client.keys("ulak:ingest:*")  # the credit list is gone
