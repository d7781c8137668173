"""How Ulak's own processes start Ray (``ulak.runtime.ray_init_args``): local stack and ``ulak up``."""

from __future__ import annotations

from ulak.runtime import RAY_WORKER_POOL, ray_init_args
from ulak.settings import RayConfig


def test_without_an_address_ulak_starts_a_ray_of_its_own_with_its_worker_pool() -> None:
    args = ray_init_args(RayConfig(num_cpus=2))
    assert args["address"] == "local"  # not a cluster an earlier `ray start` left its address for
    assert args["num_cpus"] == 2 and args["namespace"] is None
    assert args["_system_config"] == RAY_WORKER_POOL
    assert (args["include_dashboard"], args["log_to_driver"]) == (False, False)


def test_with_an_address_it_joins_that_cluster_and_leaves_its_settings_to_its_nodes() -> None:
    args = ray_init_args(RayConfig(address="10.0.0.5:6379"), namespace="ulak")
    assert (args["address"], args["namespace"], args["_system_config"]) == ("10.0.0.5:6379", "ulak", None)
