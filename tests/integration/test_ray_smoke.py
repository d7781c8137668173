"""Ray and Ray Data install and run here: the platform the dispatch and ingest layers stand on."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ulak.text import plan


def test_a_remote_task_plans_text(ray_session: Any) -> None:
    @ray_session.remote
    def parts(texts: list[str]) -> list[int]:
        return [plan(t).parts for t in texts]

    assert ray_session.get(parts.remote(["kısa", "a" * 200, "Ж" * 71])) == [1, 2, 2]


def test_ray_data_keeps_phone_numbers_as_strings(ray_session: Any) -> None:
    import ray.data

    table = pa.table({"phone": pa.array(["05321234567", "+905321234567"], pa.string())})
    rows = ray.data.from_arrow(table).take_all()
    assert [r["phone"] for r in rows] == ["05321234567", "+905321234567"]
